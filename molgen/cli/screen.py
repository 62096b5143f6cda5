"""``molgen screen``: keep the molecules that pass drug-likeness filters, with their properties as SD tags.

Molecules keep the bonds of their file (SDF); structures without bonds (XYZ) get bonds from distances
(EDM tables, or ``--bonds rdkit`` for rdDetermineBonds with the total charge). With no filter options only
unreadable, unsanitizable and duplicate molecules are removed. Examples::

    molgen screen samples.sdf -o kept.sdf --csv all.csv --preset druglike
    molgen screen samples.xyz -o kept.sdf --qed-min 0.5 --sa-max 4 --pains --brenk
"""

from __future__ import annotations

import argparse

import numpy as np

from molgen.errors import InputError

PRESETS = {
    # Lipinski (at most one violation), Veber, no PAINS, no Brenk alerts
    "druglike": dict(lipinski_max_violations=1, veber=True, reject_pains=True, reject_brenk=True),
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "screen", help="filter molecules by QED, SA score, Lipinski/Veber rules and PAINS/Brenk alerts",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="SDF/XYZ files (optionally .gz) or folders")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.sdf", help="SDF of the passing molecules")
    parser.add_argument("--csv", metavar="ALL.csv", help="every molecule with its properties and why it failed")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="druglike: Lipinski (<= 1 violation), Veber, "
                        "no PAINS, no Brenk alerts")
    parser.add_argument("--qed-min", type=float)
    parser.add_argument("--sa-max", type=float, help="maximum SA score (1 easy .. 10 hard)")
    parser.add_argument("--logp-min", type=float)
    parser.add_argument("--logp-max", type=float)
    parser.add_argument("--mw-min", type=float)
    parser.add_argument("--mw-max", type=float)
    parser.add_argument("--hbd-max", type=int)
    parser.add_argument("--hba-max", type=int)
    parser.add_argument("--rotb-max", type=int, help="maximum rotatable bonds")
    parser.add_argument("--lipinski", type=int, metavar="MAX_VIOLATIONS", dest="lipinski_max_violations",
                        help="reject molecules with more rule-of-five violations than this")
    parser.add_argument("--veber", action="store_true", help="require rotatable bonds <= 10 and TPSA <= 140")
    parser.add_argument("--pains", action="store_true", help="reject molecules with PAINS alerts")
    parser.add_argument("--brenk", action="store_true", help="reject molecules with Brenk alerts")
    parser.add_argument("--keep-duplicates", action="store_true", help="do not deduplicate by canonical SMILES")
    parser.add_argument("--bonds", choices=("edm", "rdkit"), default="edm",
                        help="bond perception for structures without bonds (default edm)")
    parser.add_argument("--workers", type=int, default=None)
    parser.set_defaults(handler=run)


def _filters(args):
    from molgen.validation.screening import ScreenFilters

    settings = dict(PRESETS.get(args.preset, {}))
    for key in ("qed_min", "sa_max", "logp_min", "logp_max", "mw_min", "mw_max", "hbd_max", "hba_max", "rotb_max",
                "lipinski_max_violations"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    if args.veber:
        settings["veber"] = True
    if args.pains:
        settings["reject_pains"] = True
    if args.brenk:
        settings["reject_brenk"] = True
    settings["dedup"] = not args.keep_duplicates
    return ScreenFilters(**settings)


def build_mols(records, workers=None, bonds: str = "edm"):
    """Sanitized RDKit molecules of (name, record) pairs: file bonds, else perceived bonds."""
    from rdkit import Chem, RDLogger

    from molgen import keys as K
    from molgen.data.convert.rdkit_mol import record_to_rdkit
    from molgen.validation.molecule_metrics import molecule_from_record, perceive
    from molgen.validation.posebusters_checks import mol_with_conformer
    from molgen.validation.protocols import Protocol

    RDLogger.DisableLog("rdApp.*")
    mols, reasons = [None] * len(records), [None] * len(records)
    without = [i for i, (_, r) in enumerate(records) if K.BOND_INDEX not in r]
    for index, (name, record) in enumerate(records):
        if K.BOND_INDEX not in record:
            continue
        mol = record_to_rdkit(record)
        for atom in mol.GetAtoms():  # as RDKit reads an SDF: hydrogens not in the file are implicit
            atom.SetNoImplicit(False)
        try:
            Chem.SanitizeMol(mol)
            mols[index] = mol
        except ValueError as exc:
            reasons[index] = f"does not sanitize: {str(exc).splitlines()[0]}"
    if without:
        molecules = [molecule_from_record(records[i][1]) for i in without]
        protocol = Protocol("charged", bonds=bonds, use_charges=True)
        perceived = perceive(molecules, protocol, workers=workers)
        for k, index in enumerate(without):
            if perceived.errors[k]:
                reasons[index] = perceived.errors[k]
                continue
            pairs, orders = perceived.bonds[k]
            codes = np.where(orders == 1.5, 4, orders).astype(np.int64)
            rows = np.concatenate([pairs, codes[:, None]], axis=1) if len(pairs) else np.zeros((0, 3), np.int64)
            charges = molecules[k].charges if molecules[k].charges is not None else perceived.assigned_charges.get(k)
            mol, reason = mol_with_conformer(molecules[k].z.tolist(), molecules[k].pos, rows, charges)
            if mol is not None:
                mol.SetProp("_Name", records[index][0])
            mols[index], reasons[index] = mol, reason
    return mols, reasons


def run(args: argparse.Namespace) -> int:
    from molgen.validation.inputs import read_records
    from molgen.validation.report import write_csv
    from molgen.validation.screening import screen, write_sdf

    filters = _filters(args)
    records, failures = read_records(args.inputs)
    if not records and not failures:
        raise InputError(None, "the inputs hold no structures")
    mols, reasons = build_mols(records, workers=args.workers, bonds=args.bonds)
    names = [name for name, _ in records]
    result = screen(mols, names, reasons, filters, workers=args.workers)
    rows = result.rows + [
        {"index": None, "name": f.name, "passed": False, "reason": f"unreadable: {f.reason}"} for f in failures
    ]
    write_sdf(args.output, result.passed)
    if args.csv:
        write_csv(args.csv, rows)
    n = len(rows)
    counts: dict[str, int] = {}
    for row in rows:
        if not row["passed"]:
            for category in {part.split(":")[0] for part in row["reason"].split("; ") if part}:
                counts[category] = counts.get(category, 0) + 1
    print(f"screened {n} molecule(s): {len(result.passed)} passed ({100 * len(result.passed) / n if n else 0:.1f} %), "
          f"written to {args.output}")
    for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {count:6d} failed on {key}")
    return 0
