"""Fit the model card's compute extrapolation from ``measured_ddpm100.csv`` (10,000-sample measurements).

In: the CSV (columns ``molecules_seen, atom_stability, mol_stability, validity``). Out (printed): the log-log
slopes of unstable atoms and invalid molecules against molecules seen, the exponent ``k`` of
``molecule stability = atom stability ** k``, and the molecules each target needs along those lines.

    python workflows/extrapolate_compute.py molgen/models/qm9/measured_ddpm100.csv --molecules-per-s 6200
"""
from __future__ import annotations

import argparse
import csv

import numpy as np

TARGETS = {"G-SchNet": (0.957, 0.681, 0.855), "EDM": (0.987, 0.820, 0.919)}  # atom, molecule, validity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--molecules-per-s", type=float, default=6200.0, help="throughput for the hours column")
    args = parser.parse_args()
    with open(args.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    seen = np.array([float(r["molecules_seen"]) for r in rows])
    atom = np.array([float(r["atom_stability"]) for r in rows])
    mol = np.array([float(r["mol_stability"]) for r in rows])
    valid = np.array([float(r["validity"]) for r in rows])
    slope_atom, icpt_atom = np.polyfit(np.log(seen), np.log(1 - atom), 1)
    slope_valid, icpt_valid = np.polyfit(np.log(seen), np.log(1 - valid), 1)
    k = float(np.median(np.log(mol) / np.log(atom)))
    print(f"{len(rows)} points: unstable atoms ~ N^{slope_atom:.2f}, invalid ~ N^{slope_valid:.2f}, "
          f"molecule = atom^{k:.1f}")

    def needed(fraction: float, slope: float, icpt: float) -> float:
        return float(np.exp((np.log(fraction) - icpt) / slope))

    for name, (t_atom, t_mol, t_valid) in TARGETS.items():
        for what, n in (("atom", needed(1 - t_atom, slope_atom, icpt_atom)),
                        ("molecule", needed(1 - t_mol ** (1 / k), slope_atom, icpt_atom)),
                        ("validity", needed(1 - t_valid, slope_valid, icpt_valid))):
            more = max(n - seen[-1], 0.0)
            print(f"{name} {what}: ~{n / 1e6:.0f} M molecules, {more / 1e6:.0f} M more, "
                  f"{more / args.molecules_per_s / 3600:.1f} h at {args.molecules_per_s:.0f}/s")


if __name__ == "__main__":
    main()
