"""How much of the full schedule's molecule stability a few-step sampler keeps (issue 5's target: >= 0.95).

Inputs are the per-structure CSVs of ``molgen validate --csv`` for two runs of the same checkpoint and seed, the
few-step run first. With the same seed and batch size, record i of both runs has the same number of atoms, so
the first ``n`` records (``n`` = the shorter run) are compared pair by pair.

Prints, for both runs over the paired records: atom and molecule stability and validity; then the ratio of
molecule stabilities with two uncertainties:
  * the binomial standard error of a ratio of two independent proportions (delta method), and
  * a paired bootstrap (records resampled together, so the shared sizes stay paired): its standard deviation
    and 95 % interval, plus the share of resamples at or above the target.

    python workflows/sampler_ratio.py few/per_structure.csv full/per_structure.csv [--target 0.95]
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np


def read_per_structure(path: Path) -> dict[str, np.ndarray]:
    """Columns of a ``molgen validate --csv`` file: n_atoms, stable_atoms, mol_stable, valid (one row per record)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"n_atoms", "stable_atoms", "mol_stable", "valid"} - set(rows[0] if rows else {})
    if missing:
        sys.exit(f"{path}: not a `molgen validate --csv` file (missing columns {sorted(missing)})")
    return {"n_atoms": np.array([int(r["n_atoms"]) for r in rows]),
            "stable_atoms": np.array([int(r["stable_atoms"]) for r in rows]),
            "mol_stable": np.array([r["mol_stable"] == "True" for r in rows]),
            "valid": np.array([r["valid"] == "True" for r in rows])}


def summary(run: dict[str, np.ndarray]) -> str:
    atom = run["stable_atoms"].sum() / run["n_atoms"].sum()
    mol = run["mol_stable"].mean()
    se = math.sqrt(mol * (1 - mol) / len(run["mol_stable"]))
    return f"atom {100 * atom:.2f} %  molecule {100 * mol:.2f} % (±{100 * se:.2f})  validity {100 * run['valid'].mean():.2f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("few", type=Path, help="per-structure CSV of the few-step run")
    parser.add_argument("full", type=Path, help="per-structure CSV of the full-schedule run")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--resamples", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    few, full = read_per_structure(args.few), read_per_structure(args.full)
    n = min(len(few["n_atoms"]), len(full["n_atoms"]))
    few = {k: v[:n] for k, v in few.items()}
    full = {k: v[:n] for k, v in full.items()}
    mismatched = int((few["n_atoms"] != full["n_atoms"]).sum())
    print(f"paired records: {n} (size mismatches: {mismatched}"
          f"{'; the runs are not paired: same seed and batch size?' if mismatched else ''})")
    print(f"few-step:      {summary(few)}")
    print(f"full schedule: {summary(full)}")

    p_few, p_full = few["mol_stable"].mean(), full["mol_stable"].mean()
    ratio = p_few / p_full
    se = ratio * math.sqrt((1 - p_few) / (n * p_few) + (1 - p_full) / (n * p_full))
    print(f"ratio {ratio:.3f} ± {se:.3f} (binomial, independent runs)")

    rng = np.random.default_rng(args.seed)
    stable_few = few["mol_stable"].astype(np.int64)
    stable_full = full["mol_stable"].astype(np.int64)
    ratios = np.empty(args.resamples)
    for k in range(args.resamples):
        pick = rng.integers(0, n, n)  # [n] record indices, the two runs resampled together
        ratios[k] = stable_few[pick].sum() / max(stable_full[pick].sum(), 1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    print(f"paired bootstrap: sd {ratios.std():.3f}, 95 % interval [{low:.3f}, {high:.3f}], "
          f"P(ratio >= {args.target}) = {(ratios >= args.target).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
