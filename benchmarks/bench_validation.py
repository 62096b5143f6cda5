"""Time the molecule metric suite (EDM protocol: stability, validity, connectivity, uniqueness) on QM9 molecules.

    python benchmarks/bench_validation.py --n 10000 --workers 2 --repeats 3 [--cli]

Molecules are a seeded random subset of qm9pack (``--seed``). The in-memory timing starts from arrays
(what a sampler hands over); ``--cli`` also times ``molgen validate`` end to end on the same molecules
written to an XYZ file (reading included). The reference figure: EDM's own metric code takes 58 s for
stability + validity on 10,000 QM9-sized molecules on these 2 cores (DESIGN.md section 5).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes (load-independent work)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli", action="store_true", help="also time `molgen validate` on an XYZ file")
    args = parser.parse_args()

    from molgen.data.readers.qm9 import load_qm9pack_arrays
    from molgen.validation.molecule_metrics import Molecule, evaluate_molecules

    arrays = load_qm9pack_arrays()
    off = arrays.offsets
    rows = np.sort(np.random.default_rng(args.seed).choice(len(arrays), args.n, replace=False))
    molecules = [Molecule(arrays.atomic_numbers[off[i]:off[i + 1]].astype(np.int64), arrays.positions[off[i]:off[i + 1]])
                 for i in rows]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {len(molecules)} molecules, "
          f"{sum(len(m.z) for m in molecules)} atoms")
    for workers in sorted({1, args.workers}):
        times, cpu = [], []
        for _ in range(args.repeats):
            start, cpu_start = time.perf_counter(), _cpu_seconds()
            report = evaluate_molecules(molecules, "edm", workers=workers)
            times.append(time.perf_counter() - start)
            cpu.append(_cpu_seconds() - cpu_start)
        m = report.metrics
        print(f"in memory, {workers} worker(s): best {min(times):.2f} s, median {np.median(times):.2f} s, "
              f"CPU time (this process + workers) {np.median(cpu):.2f} s "
              f"({len(molecules) / min(times):.0f} molecules/s; EDM's code: 58 s, {58 / min(times):.1f}x faster) "
              f"| atom {100 * m['atom_stability']:.2f} mol {100 * m['mol_stability']:.2f} "
              f"valid {100 * m['validity']:.2f} unique {100 * m['uniqueness']:.2f}")
    if args.cli:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "molecules.xyz")
            with open(path, "w") as handle:
                from molgen.elements import SYMBOLS

                for k, m in enumerate(molecules):
                    handle.write(f"{len(m.z)}\nmol{k}\n")
                    handle.writelines(f"{SYMBOLS[int(z)]} {x:.6f} {y:.6f} {w:.6f}\n" for z, (x, y, w) in zip(m.z, m.pos))
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "molgen.cli.main", "validate", path, "--workers",
                                str(args.workers), "--json", os.path.join(tmp, "m.json")], check=True,
                               stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            print(f"molgen validate (XYZ file, process start and reading included), {args.workers} workers: "
                  f"best {min(times):.2f} s, median {np.median(times):.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
