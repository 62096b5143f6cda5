"""PoseBusters intramolecular checks (package ``posebusters``), run in worker processes.

Checks (PoseBusters' ``mol`` configuration): sanitization, all atoms connected, bond lengths and bond angles
within the RDKit distance-geometry bounds widened by 25 %, no internal steric clash, flat aromatic rings,
flat double bonds, non-flat saturated rings; ``energy=True`` adds PoseBusters' internal-energy ratio test
(slow: about seconds per molecule, because it generates a conformer ensemble).

PoseBusters needs an RDKit molecule with bonds: the structure's own bonds when it has them (SDF), otherwise
the bonds of the validation protocol, with the molecule sanitized. Molecules that cannot be built or
sanitized are not passed to PoseBusters; they fail every check with that reason.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from molgen.validation.rdkit_validity import default_workers, run_in_pool


def mol_with_conformer(z: Sequence[int], pos: np.ndarray, bonds: np.ndarray, charges: Sequence[int] | None = None):
    """Sanitized RDKit molecule with one 3D conformer, or ``(None, reason)``.

    ``bonds`` are rows ``(i, j, code)`` with SDF codes 1/2/3/4.
    """
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    from molgen.validation.rdkit_validity import build_mol

    mol = build_mol(z, bonds, charges)
    conformer = Chem.Conformer(len(z))
    for index, (x, y, w) in enumerate(np.asarray(pos, dtype=np.float64).tolist()):
        conformer.SetAtomPosition(index, Point3D(x, y, w))
    conformer.Set3D(True)
    mol.AddConformer(conformer, assignId=True)
    mol = mol.GetMol()
    try:
        Chem.SanitizeMol(mol)
    except ValueError as exc:
        return None, f"does not sanitize: {str(exc).splitlines()[0]}"
    return mol, None


def _bust_chunk(args: tuple) -> list[dict[str, Any]]:
    mol_blocks, config, protein = args
    import logging

    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    logging.getLogger("posebusters").setLevel(logging.ERROR)
    from posebusters import PoseBusters

    mols = [Chem.Mol(block) for block in mol_blocks]
    buster = PoseBusters(config=config, max_workers=0)
    table = buster.bust(mols, mol_cond=protein, full_report=True) if protein else buster.bust(mols, full_report=True)
    rows = []
    for _, series in table.reset_index(drop=True).iterrows():
        rows.append({str(k): _plain(v) for k, v in series.items() if k not in ("file", "molecule", "position")})
    return rows


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def bust_many(mols: Sequence[Any], *, config: str, protein: str | None = None, workers: int | None = None,
              chunk_size: int = 16) -> list[dict[str, Any]]:
    """PoseBusters table rows (full report) for RDKit molecules, chunked over worker processes."""
    from rdkit import Chem

    blocks = [m.ToBinary() for m in mols]  # lossless, unlike a mol block
    chunks = [(blocks[i:i + chunk_size], config, protein) for i in range(0, len(blocks), chunk_size)]
    if not chunks:
        return []
    workers = default_workers() if workers is None else max(1, workers)
    if workers == 1 or len(chunks) == 1:
        parts = [_bust_chunk(c) for c in chunks]
    else:
        parts = run_in_pool(_bust_chunk, chunks, workers)
    return [row for part in parts for row in part]


# boolean PoseBusters columns reported as fractions, with our key names
INTRAMOLECULAR_CHECKS = {
    "bond_lengths": "pb_bond_lengths",
    "bond_angles": "pb_bond_angles",
    "internal_steric_clash": "pb_no_internal_clash",
    "aromatic_ring_flatness": "pb_aromatic_ring_flatness",
    "double_bond_flatness": "pb_double_bond_flatness",
    "internal_energy": "pb_internal_energy",
}


def posebusters_molecules(mols: Sequence[Any | None], reasons: Sequence[str | None], *, energy: bool = False,
                          workers: int | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Fractions passing each intramolecular check over all molecules, and one row per molecule.

    ``mols[i]`` is None when the molecule could not be built; ``reasons[i]`` then says why.
    """
    present = [i for i, m in enumerate(mols) if m is not None]
    rows_present = bust_many([mols[i] for i in present], config="mol" if energy else "mol_fast", workers=workers)
    rows: list[dict[str, Any]] = [{"pb_reason": f"not checked by PoseBusters ({reasons[i] or 'no molecule'})"}
                                  for i in range(len(mols))]
    for index, row in zip(present, rows_present):
        out = {key: bool(row[column]) for column, key in INTRAMOLECULAR_CHECKS.items() if row.get(column) is not None}
        failed = [key for key, ok in out.items() if not ok]
        out["pb_all"] = not failed
        out["pb_reason"] = ("PoseBusters failed: " + ", ".join(failed)) if failed else ""
        rows[index] = out
    n = len(mols)
    keys = [k for c, k in INTRAMOLECULAR_CHECKS.items() if energy or c != "internal_energy"] + ["pb_all"]
    metrics = {key: (sum(bool(r.get(key)) for r in rows) / n if n else 0.0) for key in keys}
    return metrics, rows
