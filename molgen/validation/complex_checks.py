"""Ligand-in-pocket checks against the protein, with PoseBusters' docking checks (``dock_fast`` configuration).

Per ligand: the shortest ligand-protein heavy-atom distance relative to the sum of van der Waals radii
(passes at >= 0.75), the share of the ligand's van der Waals volume overlapping the protein (passes at
<= 7.5 %), the ligand not being more than 5 Å from the protein, plus PoseBusters' intramolecular checks.
Ligands come from SDF (their own bonds) or, without bonds, from the protocol's bond perception; the protein
is a PDB file (hydrogens ignored).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from molgen.errors import InputError
from molgen.validation.posebusters_checks import bust_many

# PoseBusters column -> (our key, meaning)
DOCK_CHECKS = {
    "minimum_distance_to_protein": "no_protein_clash",
    "volume_overlap_with_protein": "volume_overlap_ok",
    "protein-ligand_maximum_distance": "near_protein",
    "bond_lengths": "pb_bond_lengths",
    "bond_angles": "pb_bond_angles",
    "internal_steric_clash": "pb_no_internal_clash",
    "aromatic_ring_flatness": "pb_aromatic_ring_flatness",
}
DOCK_VALUES = {
    "smallest_distance_protein": "min_distance_protein",  # Å
    "volume_overlap_protein": "volume_overlap_protein",  # fraction of the ligand's volume
}


def complex_checks(ligands: Sequence[Any | None], reasons: Sequence[str | None], protein: str | Path,
                   workers: int | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Fractions of ligands passing each check (over all ligands) and one row per ligand."""
    protein = Path(protein)
    if not protein.is_file():
        raise InputError(protein, "protein file not found")
    present = [i for i, m in enumerate(ligands) if m is not None]
    table = bust_many([ligands[i] for i in present], config="dock_fast", protein=str(protein), workers=workers)
    rows: list[dict[str, Any]] = [{"reason": reasons[i] or "not checked"} for i in range(len(ligands))]
    for index, row in zip(present, table):
        out: dict[str, Any] = {}
        for column, key in DOCK_CHECKS.items():
            if row.get(column) is not None:
                out[key] = bool(row[column])
        for column, key in DOCK_VALUES.items():
            if row.get(column) is not None:
                out[key] = float(row[column])
        failed = [k for k, v in out.items() if isinstance(v, bool) and not v]
        out["all_checks"] = not failed
        out["reason"] = ("failed: " + ", ".join(failed)) if failed else ""
        rows[index] = out
    n = len(ligands)
    metrics: dict[str, Any] = {"n": n}
    for key in list(DOCK_CHECKS.values()) + ["all_checks"]:
        metrics[key] = sum(bool(r.get(key)) for r in rows) / n if n else 0.0
    distances = [r["min_distance_protein"] for r in rows if "min_distance_protein" in r]
    if distances:
        metrics["min_distance_protein_median"] = float(sorted(distances)[len(distances) // 2])
    return metrics, rows
