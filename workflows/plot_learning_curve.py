"""Plot the shipped QM9 model's learning curve: EDM-protocol metrics against molecules seen.

    python workflows/plot_learning_curve.py CURVE.csv OUT.png [--measured MEASURED.csv] [--title TITLE]

CURVE.csv has columns step, molecules_seen, atom_stability, mol_stability, validity, uniqueness, n_samples
(the DDIM-100 curve, solid lines). MEASURED.csv has the same columns for the card's 10,000-sample measurements
with the README's sampler (ddpm 100, quadratic grid), drawn as dashed lines in the same colours.
"""

from __future__ import annotations

import argparse

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


METRICS = (("atom_stability", "atom stability", "C0"), ("mol_stability", "molecule stability", "C1"),
           ("validity", "validity (RDKit)", "C2"))


def main(curve_csv: str, out_png: str, measured_csv: str | None = None,
         title: str = "molgen qm9 (small preset)") -> None:
    """Write OUT.png: the DDIM-100 curve (solid) and, if given, the ddpm-100 measurements (dashed)."""
    curve = pd.read_csv(curve_csv)
    measured = pd.read_csv(measured_csv) if measured_csv else None
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for column, label, colour in METRICS:
        ax.plot(curve["molecules_seen"] / 1e3, 100 * curve[column], marker="o", color=colour,
                label=f"{label} (DDIM 100, 200-2,000 samples)")
        if measured is not None:
            ax.plot(measured["molecules_seen"] / 1e3, 100 * measured[column], marker="s", linestyle="--",
                    color=colour, label=f"{label} (ddpm 100 quadratic, 10,000)")
    for value, name, offset in ((95.7, "G-SchNet atom 95.7", -4.5), (98.7, "EDM atom 98.7", 1.2)):
        ax.axhline(value, linestyle=":", linewidth=1, color="grey")
        ax.text(curve["molecules_seen"].min() / 1e3, value + offset, name, fontsize=7, color="grey")
    ax.set_xscale("log")  # the curve is about log-linear in molecules seen
    ticks = [t for t in (125, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)
             if curve["molecules_seen"].min() / 2e3 <= t <= 2 * curve["molecules_seen"].max() / 1e3]
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training molecules seen (thousands, log scale)")
    ax.set_ylabel("% (EDM protocol)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curve_csv")
    parser.add_argument("out_png")
    parser.add_argument("--measured", help="CSV of the 10,000-sample ddpm-100 measurements")
    parser.add_argument("--title", default="molgen qm9 (small preset)")
    args = parser.parse_args()
    main(args.curve_csv, args.out_png, args.measured, args.title)
