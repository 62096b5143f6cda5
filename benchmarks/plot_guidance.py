"""Plot guidance strength against property error and structure quality from ``benchmarks/results/guidance_gap.json``.

    python benchmarks/plot_guidance.py [--input benchmarks/results/guidance_gap.json] [--output benchmarks/guidance_gap.png]

One row of panels per guidance kind (classifier-free on ``qm9_gap``, classifier on ``qm9``); left: the oracle's gap
error against the target, right: validity and atom stability, both against the guidance strength, one line per
target (sampling.md sections 4c and 4d).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = {"cfg": "classifier-free guidance weight w", "classifier": "classifier-guidance scale"}


def plot(data: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(KINDS), 2, figsize=(10, 7), constrained_layout=True)
    for row, (kind, label) in enumerate(KINDS.items()):
        error_ax, quality_ax = axes[row]
        for index, (target, rows) in enumerate(data["rows"][kind].items()):
            color = f"C{index}"
            # the unguided row (0) sits at the left edge of the symlog axis
            x = [r["guidance"] for r in rows]
            error_ax.plot(x, [r["MAE (oracle)"] for r in rows], "o-", color=color, label=f"target {target} eV")
            quality_ax.plot(x, [100 * r["validity"] for r in rows], "o-", color=color,
                            label=f"validity, target {target} eV")
            quality_ax.plot(x, [100 * r["atom_stability"] for r in rows], "s--", color=color,
                            label=f"atom stability, target {target} eV")
        linthresh = 1.0 if kind == "cfg" else 0.003
        for ax in (error_ax, quality_ax):
            ax.set_xscale("symlog", linthresh=linthresh)
            ax.set_xlabel(label)
            ax.grid(alpha=0.3)
        error_ax.set_ylabel("gap error to target (oracle MAE, eV)")
        quality_ax.set_ylabel("% of 300 molecules (EDM protocol)")
        quality_ax.set_ylim(0, 100)
        error_ax.legend(fontsize=8)
        quality_ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("QM9 HOMO-LUMO gap: guidance strength against property error and structure quality")
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=HERE / "results" / "guidance_gap.json")
    parser.add_argument("--output", type=Path, default=HERE / "guidance_gap.png")
    args = parser.parse_args(argv)
    plot(json.loads(args.input.read_text()), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
