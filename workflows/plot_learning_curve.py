"""Plot the shipped QM9 model's learning curve: EDM-protocol metrics against molecules seen.

    python workflows/plot_learning_curve.py CURVE.csv OUT.png [TITLE]

CURVE.csv has columns step, molecules_seen, atom_stability, mol_stability, validity, uniqueness, n_samples.
"""

from __future__ import annotations

import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def main(curve_csv: str, out_png: str, title: str = "molgen qm9 (small preset)") -> None:
    curve = pd.read_csv(curve_csv)
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in (("atom_stability", "atom stability"), ("mol_stability", "molecule stability"),
                          ("validity", "validity (RDKit)")):
        ax.plot(curve["molecules_seen"] / 1e3, 100 * curve[column], marker="o", label=label)
    for value, name, offset in ((95.7, "G-SchNet atom 95.7", -4.5), (98.7, "EDM atom 98.7", 1.2)):
        ax.axhline(value, linestyle=":", linewidth=1, color="grey")
        ax.text(curve["molecules_seen"].min() / 1e3, value + offset, name, fontsize=7, color="grey")
    ax.set_xscale("log")  # the curve is about log-linear in molecules seen
    ticks = [t for t in (125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
             if curve["molecules_seen"].min() / 2e3 <= t <= 2 * curve["molecules_seen"].max() / 1e3]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training molecules seen (thousands, log scale)")
    ax.set_ylabel("% (EDM protocol, DDIM 100 steps)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.06), fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:4])
