"""Time to build full QM9 from qm9pack into the packed cache, and to reload it.

    python benchmarks/bench_data.py [--cache-dir /tmp/molgen-bench]

Each phase runs in a fresh Python process so that the reload does not profit from the build's
page cache of imports; both the in-process time (open_dataset) and the whole command
(`molgen data stats qm9`, imports included) are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

OPEN = """
import json, sys, time
t0 = time.perf_counter()
from molgen.data.datasets import open_dataset
import torch_geometric.data, molgen.data.readers.qm9  # imports any training process has already paid
t1 = time.perf_counter()
dataset = open_dataset("qm9", cache_dir=sys.argv[1], rebuild=sys.argv[2] == "build")
t2 = time.perf_counter()
first = [dataset[i] for i in range(0, len(dataset), 1000)]
print(json.dumps({"n": len(dataset), "import_s": t1 - t0, "open_s": t2 - t1}))
"""


def run(cache_dir: str, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", OPEN, cache_dir, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="molgen-bench-")
    build = run(cache_dir, "build")
    reload = run(cache_dir, "reload")
    start = time.perf_counter()
    subprocess.run(["molgen", "data", "stats", "qm9", "--cache-dir", cache_dir], capture_output=True, check=True)
    command = time.perf_counter() - start
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print(f"structures: {build['n']}")
    print(f"build (qm9pack -> packed cache, in process): {build['open_s']:.1f} s")
    print(f"reload (open_dataset from cache, in process): {reload['open_s']:.2f} s  ({build['open_s'] / reload['open_s']:.0f}x faster)")
    print(f"`molgen data stats qm9` from cache, whole command incl. imports: {command:.1f} s")
    if args.cache_dir is None:
        shutil.rmtree(cache_dir)


if __name__ == "__main__":
    main()
