"""``molgen validate``: metrics of generated molecules, crystals or ligands in pockets.

Examples::

    molgen validate samples.sdf --protocol edm --reference qm9 --json metrics.json --csv per_structure.csv
    molgen validate generated/ --kind crystal --reference train.csv --json metrics.json
    molgen validate ligands.sdf --kind complex --protein receptor.pdb --csv checks.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from molgen.errors import InputError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validity, stability, uniqueness, novelty and distribution metrics of structure files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="SDF, XYZ/extxyz, CIF, CDVAE CSV, qm9pack CSV files (optionally .gz) or folders")
    parser.add_argument("--kind", choices=("auto", "molecule", "crystal", "complex"), default="auto",
                        help="what the inputs are (default: crystal if the first structure has a lattice)")
    parser.add_argument("--protocol", choices=("edm", "edm-geom", "charged"), default="edm",
                        help="molecule protocol: edm = EDM's exact QM9 evaluation (default), edm-geom = EDM's GEOM "
                             "variant, charged = file bonds and formal charges allowed")
    parser.add_argument("--bonds", choices=("auto", "edm", "file", "rdkit"), default=None,
                        help="bond source for --protocol charged (default auto: file bonds, else EDM distances)")
    parser.add_argument("--reference", metavar="DATASET_OR_FILE",
                        help="reference set for novelty and distributions: qm9 (EDM's training split), qm9-all, "
                             "or a structure file/folder")
    parser.add_argument("--ground-truth", metavar="FILE",
                        help="crystals: ground-truth structures in the same order, for match rate and RMSE")
    parser.add_argument("--protein", metavar="PDB", help="complexes: the receptor the ligands sit in")
    parser.add_argument("--posebusters", action="store_true",
                        help="molecules: also run PoseBusters' intramolecular checks (about 0.1-0.2 s a molecule)")
    parser.add_argument("--energy", action="store_true", help="with --posebusters: add the slow energy-ratio check")
    parser.add_argument("--coverage", choices=("mp20", "carbon", "perovskite"),
                        help="crystals with --reference: COV-R / COV-P with this dataset's cut-offs (needs matminer)")
    parser.add_argument("--no-uniqueness", action="store_true",
                        help="crystals: skip StructureMatcher uniqueness (quadratic in same-formula structures)")
    parser.add_argument("--json", metavar="OUT", help="write the metrics as JSON")
    parser.add_argument("--csv", metavar="PER_STRUCTURE", help="write one row per structure with why it failed")
    parser.add_argument("--plots", metavar="DIR", help="write PNG histograms (against the reference when given)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all usable CPUs)")
    parser.add_argument("--rdkit-timeout", type=float, default=10.0,
                        help="seconds allowed per molecule for rdDetermineBonds (--bonds rdkit)")
    parser.add_argument("--cache-dir", help="where reference SMILES/histograms are cached (default ~/.cache/molgen)")
    parser.add_argument("--no-cache", action="store_true", help="recompute the reference, do not read or write the cache")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from molgen.validation.inputs import guess_kind

    start = time.perf_counter()
    kind = args.kind
    if kind == "auto":
        kind = "complex" if args.protein else guess_kind(args.inputs)
    if kind == "molecule":
        metrics, rows, title = _molecules(args)
    elif kind == "crystal":
        metrics, rows, title = _crystals(args)
    else:
        metrics, rows, title = _complexes(args)
    metrics["seconds"] = round(time.perf_counter() - start, 3)
    _finish(args, metrics, rows, title)
    return 0


def _finish(args, metrics: dict[str, Any], rows: list[dict[str, Any]], title: str) -> None:
    from molgen.validation.report import format_table, write_csv, write_json

    print(format_table(metrics, title))
    failed = [r for r in rows if r.get("reason")]
    if failed:
        print(f"  {len(failed)} structure(s) with problems" + (f", see {args.csv}" if args.csv else "; first ones:"))
        if not args.csv:
            for row in failed[:5]:
                print(f"    {row.get('name') or row.get('index')}: {row['reason']}")
    if args.json:
        write_json(args.json, metrics)
    if args.csv:
        write_csv(args.csv, rows)


def _molecules(args) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    from molgen.validation.distributions import compare, molecule_stats
    from molgen.validation.inputs import read_molecules
    from molgen.validation.molecule_metrics import evaluate_molecules
    from molgen.validation.protocols import get_protocol

    protocol = get_protocol(args.protocol, args.bonds)
    molecules, failures = read_molecules(args.inputs)
    if not molecules and not failures:
        raise InputError(None, "the inputs hold no structures")
    reference = None
    if args.reference:
        from molgen.validation.reference import load_molecule_reference

        reference = load_molecule_reference(args.reference, protocol, cache=args.cache_dir, workers=args.workers,
                                            use_cache=not args.no_cache)
    report = evaluate_molecules(molecules, protocol, failures=failures, workers=args.workers,
                                reference_smiles=reference.smiles if reference else None,
                                rdkit_timeout=args.rdkit_timeout)
    metrics = dict(report.metrics)
    stats = molecule_stats([m.z for m in molecules], [m.pos for m in molecules], report.bonds) if molecules else None
    if reference is not None:
        metrics["reference"] = {"name": reference.name, "n": reference.n}
        if stats is not None:
            distances = compare(stats, reference.stats)
            metrics.update({k: v for k, v in distances.items() if not isinstance(v, dict)})
            metrics["distributions_by_type"] = {k: v for k, v in distances.items() if isinstance(v, dict)}
    rows = report.rows
    if args.posebusters:
        pb_metrics, pb_rows = _posebusters(molecules, report, protocol, args)
        for row, extra in zip(rows, pb_rows):
            reason = extra.pop("pb_reason", "")
            row.update(extra)
            if reason:
                row["reason"] = "; ".join(filter(None, [row["reason"], reason]))
        for row in rows[len(molecules):]:
            row["pb_all"] = False
        metrics.update({k: v * len(molecules) / metrics["n"] for k, v in pb_metrics.items()})
    if args.plots and stats is not None:
        from molgen.validation.report import plot_molecule_distributions

        plot_molecule_distributions(args.plots, stats, reference.stats if reference else None)
    return metrics, rows, f"molecules ({', '.join(map(str, args.inputs))})"


def _rdkit_mols(molecules, report, protocol):
    """Sanitized RDKit molecules (with conformers) for PoseBusters: file bonds if present, else perceived ones."""
    from molgen.validation.posebusters_checks import mol_with_conformer

    mols, reasons = [], []
    for index, molecule in enumerate(molecules):
        if molecule.bonds is not None:
            pairs = np.asarray(molecule.bonds, dtype=np.int64).reshape(-1, 2)
            codes = np.asarray(molecule.bond_types, dtype=np.int64).reshape(-1)
        else:
            pairs, orders = report.bonds[index]
            codes = np.where(orders == 1.5, 4, orders).astype(np.int64)
        rows = np.concatenate([pairs, codes[:, None]], axis=1) if len(pairs) else np.zeros((0, 3), np.int64)
        charges = molecule.charges if molecule.charges is not None else None
        mol, reason = mol_with_conformer(molecule.z.tolist(), molecule.pos, rows, charges)
        mols.append(mol)
        reasons.append(reason)
    return mols, reasons


def _posebusters(molecules, report, protocol, args):
    from molgen.validation.posebusters_checks import posebusters_molecules

    mols, reasons = _rdkit_mols(molecules, report, protocol)
    return posebusters_molecules(mols, reasons, energy=args.energy, workers=args.workers)


def _complexes(args) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    from molgen.validation.complex_checks import complex_checks
    from molgen.validation.inputs import read_molecules
    from molgen.validation.molecule_metrics import evaluate_molecules
    from molgen.validation.protocols import get_protocol

    if not args.protein:
        raise InputError(None, "--kind complex needs --protein PDB")
    protocol = get_protocol(args.protocol, args.bonds)
    molecules, failures = read_molecules(args.inputs)
    report = evaluate_molecules(molecules, protocol, failures=failures, workers=args.workers)
    mols, reasons = _rdkit_mols(molecules, report, protocol)
    dock_metrics, dock_rows = complex_checks(mols, reasons, args.protein, workers=args.workers)
    metrics = dict(report.metrics)
    n_all = metrics["n"]
    for key, value in dock_metrics.items():
        if key != "n":
            metrics[key] = value * len(molecules) / n_all if isinstance(value, float) and key != "min_distance_protein_median" else value
    rows = report.rows
    for row, extra in zip(rows, dock_rows):
        reason = extra.pop("reason", "")
        row.update(extra)
        if reason:
            row["reason"] = "; ".join(filter(None, [row["reason"], reason]))
    return metrics, rows, f"ligands in {args.protein}"


def _crystals(args) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    from molgen.validation.crystal_metrics import evaluate_crystals
    from molgen.validation.inputs import read_crystals

    crystals, failures = read_crystals(args.inputs)
    if not crystals and not failures:
        raise InputError(None, "the inputs hold no structures")
    reference = ground_truth = None
    if args.reference:
        reference, ref_failures = read_crystals([args.reference])
        if ref_failures:
            print(f"reference: {len(ref_failures)} unreadable structure(s) left out", file=sys.stderr)
    if args.ground_truth:
        ground_truth, gt_failures = read_crystals([args.ground_truth])
        if gt_failures:
            raise InputError(args.ground_truth, f"{len(gt_failures)} ground-truth structure(s) cannot be read; "
                             "match rate needs every pair")
        if failures:
            raise InputError(None, f"{len(failures)} predicted structure(s) cannot be read; match rate needs every pair")
    report = evaluate_crystals(crystals, failures=failures, reference=reference, ground_truth=ground_truth,
                               uniqueness=not args.no_uniqueness)
    metrics = dict(report.metrics)
    if args.coverage:
        if reference is None:
            raise InputError(None, "--coverage needs --reference")
        metrics.update(_coverage(report, reference, args.coverage, args.workers))
    if args.plots:
        from molgen.validation.report import plot_crystal_distributions

        plot_crystal_distributions(args.plots, report.structures, [c.structure() for c in reference] if reference else None)
    return metrics, report.rows, f"crystals ({', '.join(map(str, args.inputs))})"


def _coverage(report, reference, dataset: str, workers: int | None) -> dict[str, float]:
    from molgen.validation.crystal_metrics import (
        COV_CUTOFFS, coverage, fingerprints, standardise_composition_fingerprints,
    )

    struct_fps, comp_fps = fingerprints(report.structures, workers)
    ref_struct, ref_comp = fingerprints([c.structure() for c in reference], workers)
    keep = [i for i, fp in enumerate(struct_fps) if fp is not None]
    ref_keep = [i for i, fp in enumerate(ref_struct) if fp is not None]
    cut_struct, cut_comp = COV_CUTOFFS[dataset]
    return coverage(
        np.stack([struct_fps[i] for i in keep]), standardise_composition_fingerprints(np.stack([comp_fps[i] for i in keep])),
        np.stack([ref_struct[i] for i in ref_keep]),
        standardise_composition_fingerprints(np.stack([ref_comp[i] for i in ref_keep])),
        cut_struct, cut_comp, n_generated=len(report.structures),
    )
