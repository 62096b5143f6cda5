"""``molgen data``: dataset statistics and cache building.

``molgen data stats SOURCE [--json OUT] [--skip-bad]`` prints the number of structures, the
atoms-per-structure histogram, element counts and (for crystals) lattice statistics. SOURCE is a
dataset name (``qm9``, ``qm9_sample``) or a file / folder.

``molgen data build SOURCE [--skip-bad] [--rebuild] [--output DIR]`` processes a source into the cache
(and copies the packed dataset to DIR, a source that opens without the original files or packages).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from molgen.data.statistics import DatasetStatistics


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="dataset statistics and cache building")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    stats = commands.add_parser("stats", help="statistics of a dataset, file or folder")
    stats.add_argument("source", help="dataset name (qm9, qm9_sample) or a file / folder of structures")
    stats.add_argument("--json", type=Path, metavar="OUT", help="also write the statistics as JSON")
    stats.add_argument("--skip-bad", action="store_true", help="skip unreadable records (reported) instead of stopping")
    stats.add_argument("--cache-dir", type=Path, help="dataset cache folder (default $MOLGEN_CACHE or ~/.cache/molgen)")
    stats.set_defaults(handler=run_stats)

    build = commands.add_parser("build", help="process a source into the dataset cache")
    build.add_argument("source", help="dataset name (qm9, qm9_sample) or a file / folder")
    build.add_argument("--skip-bad", action="store_true", help="skip unreadable records (reported) instead of stopping")
    build.add_argument("--rebuild", action="store_true", help="build again even if cached")
    build.add_argument("--cache-dir", type=Path)
    build.add_argument("--output", type=Path, metavar="DIR",
                       help="also copy the packed dataset to DIR (opens as a source anywhere, with no qm9pack etc.)")
    build.set_defaults(handler=run_build)
    pocket = commands.add_parser("pocket", help="pocket of a receptor around a ligand (or a centre)")
    pocket.add_argument("protein", type=Path, help="receptor PDB or mmCIF file")
    pocket.add_argument("ligand", type=Path, nargs="?", help="reference ligand SDF (omit with --center)")
    pocket.add_argument("--radius", type=float, default=10.0, help="residues with any atom within this distance (Å)")
    pocket.add_argument("--center", type=_center, metavar="X,Y,Z", help="pocket around a point instead of a ligand")
    pocket.add_argument("-o", "--output", type=Path, help="write the pocket residues as PDB")
    pocket.add_argument("--json", type=Path, metavar="OUT", help="write residues and counts as JSON")
    pocket.set_defaults(handler=run_pocket)
    parser.set_defaults(handler=lambda args: parser.print_help() or 1)


def _center(text: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--center takes three numbers X,Y,Z, got '{text}'") from None
    return x, y, z


def run_pocket(args: argparse.Namespace) -> int:
    from molgen import keys as K
    from molgen.data.readers import proteins
    from molgen.errors import MolgenError
    from molgen.export.pdb import pocket_residues, write_pocket_pdb

    if args.center is not None:
        protein = proteins.read_protein(args.protein)
        record = proteins.pocket_from_center(protein, args.center, args.radius)
        n_ligand = 0
    elif args.ligand is not None:
        record = proteins.read_pocket(args.protein, args.ligand, radius=args.radius)
        n_ligand = int((~record[K.IS_PROTEIN]).sum())
    else:
        raise MolgenError("give a ligand SDF or --center X,Y,Z")
    residues = pocket_residues(record)
    n_protein = int(record[K.IS_PROTEIN].sum())
    print(f"pocket of {args.protein.name}: {len(residues)} residues, {n_protein} atoms within {args.radius:g} Å"
          + (f" of {n_ligand} ligand atoms" if n_ligand else f" of {args.center}"))
    for start in range(0, len(residues), 8):
        print("  " + "  ".join(residues[start : start + 8]))
    if args.output:
        write_pocket_pdb(record, args.output)
    if args.json:
        args.json.write_text(json.dumps({"residues": residues, "n_residues": len(residues),
                                         "n_pocket_atoms": n_protein, "n_ligand_atoms": n_ligand,
                                         "radius": args.radius}, indent=1))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from molgen.data.datasets import NAMED_SOURCES, open_dataset

    start = time.perf_counter()
    on_error = "skip" if args.skip_bad else "raise"
    if args.source in NAMED_SOURCES:
        dataset = open_dataset(args.source, args.cache_dir, on_error=on_error)
        stats, skipped = dataset.statistics, dataset.skipped
    else:
        stats, skipped = _stream_statistics(Path(args.source), on_error)
    report = stats.summary()
    report["source"] = args.source
    report["skipped"] = skipped
    report["seconds"] = round(time.perf_counter() - start, 3)
    print(format_statistics(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _stream_statistics(path: Path, on_error: str) -> tuple[DatasetStatistics, dict]:
    """Statistics of a file or folder read record by record (constant memory, no cache)."""
    from molgen import keys as K
    from molgen.data.datasets import _declared_property_names
    from molgen.data.readers import ReadPolicy, read_structures
    from molgen.data.statistics import StatisticsAccumulator
    from molgen.errors import InputError

    if not path.exists():
        raise InputError(path, "no such file or folder, and not a dataset name (qm9, qm9_sample)")
    policy = ReadPolicy(on_error)  # type: ignore[arg-type]
    acc = StatisticsAccumulator()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    acc.property_names = next((names for f in files if (names := _declared_property_names(f))), [])
    records = read_structures(path, policy)
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        records = tqdm(records, desc=f"reading {path.name}", unit=" structures", leave=False)
    for record in records:
        if not acc.property_names and K.INFO in record and "property_names" in record[K.INFO]:
            acc.property_names = list(record[K.INFO]["property_names"])
        acc.add(record)
    if len(policy.skipped):
        print(policy.skipped.summary(), file=sys.stderr)
    skipped = {"count": len(policy.skipped), "reasons": dict(policy.skipped.reasons())}
    return acc.finish(), skipped


def run_build(args: argparse.Namespace) -> int:
    from molgen.data.datasets import open_dataset

    start = time.perf_counter()
    dataset = open_dataset(args.source, args.cache_dir, on_error="skip" if args.skip_bad else "raise",
                           rebuild=args.rebuild)
    print(f"{dataset.name}: {len(dataset)} structures in {dataset.folder} "
          f"({time.perf_counter() - start:.1f} s; splits "
          + ", ".join(f"{k} {len(v)}" for k, v in dataset.splits.items()) + ")")
    if dataset.skipped.get("count"):
        print(f"skipped {dataset.skipped['count']} record(s): {dataset.skipped['reasons']}")
    if args.output is not None:
        from molgen.data.datasets import export_dataset

        print(f"packed copy: {export_dataset(dataset, args.output)} (use it as a source: data.source={args.output})")
    return 0


def format_statistics(report: dict, width: int = 40) -> str:
    """Readable text of a ``data stats`` report: counts, a size histogram, elements, lattice."""
    lines = [
        f"source        {report['source']}",
        f"structures    {report['n_structures']}",
        f"atoms/struct  mean {report['n_atoms_mean']:.2f}, min {report['n_atoms_min']}, max {report['n_atoms_max']}",
    ]
    skipped = report.get("skipped") or {}
    if skipped.get("count"):
        lines.append(f"skipped       {skipped['count']} record(s): " +
                     "; ".join(f"{n} x {r}" for r, n in skipped.get("reasons", {}).items()))
    histogram = {int(k): v for k, v in report["n_atoms_histogram"].items()}
    if histogram:
        lines.append("atoms per structure:")
        top = max(histogram.values())
        for size, count in sorted(histogram.items()):
            bar = "#" * max(1, round(width * count / top))
            lines.append(f"  {size:>5} {count:>8}  {bar}")
    total = sum(report["elements"].values()) or 1
    lines.append("elements:")
    for element, count in sorted(report["elements"].items(), key=lambda item: -item[1]):
        lines.append(f"  {element:<3} {count:>10}  {100 * count / total:6.2f} %")
    if "formal_charges" in report and set(report["formal_charges"]) != {"0"}:
        lines.append("formal charges: " + ", ".join(f"{k}: {v}" for k, v in report["formal_charges"].items()))
    if "properties" in report:
        lines.append("properties (mean ± std):")
        for name, p in report["properties"].items():
            lines.append(f"  {name:<8} {p['mean']:.5g} ± {p['std']:.5g} {p['unit']}")
    if "lattice" in report:
        lines.append(f"lattice ({report['lattice'].get('n_periodic', {}).get('count', 0)} periodic structures):")
        for name, s in report["lattice"].items():
            if name == "n_periodic":
                continue
            lines.append(f"  {name:<16} mean {s['mean']:9.3f}  std {s['std']:8.3f}  min {s['min']:9.3f}  max {s['max']:9.3f}")
    lines.append(f"time          {report['seconds']:.2f} s")
    return "\n".join(lines)
