"""RDKit validity: build a molecule from perceived bonds, sanitize it, take canonical SMILES; in parallel.

The procedure follows EDM (``qm9/rdkit_functions.py``): atoms are plain element atoms (implicit hydrogens
allowed), bonds are added with their orders, ``Chem.SanitizeMol`` must succeed (a ``ValueError`` means
invalid), the whole molecule's canonical SMILES is taken, then the SMILES of its largest fragment (the first
fragment of maximal atom count, sanitized again). With one fragment the two SMILES are the same string,
so the second sanitization is skipped.

Work is sent to worker processes in chunks (:func:`validate_many`); the workers import only RDKit and NumPy.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Iterable, NamedTuple, Sequence

import numpy as np

# one item: (atomic numbers [n_atoms], bonds [n_bonds, 3] rows (i, j, code), formal charges or None, all single)
Item = tuple


class ValidityResult(NamedTuple):
    """Outcome of the RDKit validity check of one molecule."""

    valid: bool
    smiles: str | None  # canonical SMILES of the largest fragment (EDM's 'valid' entry)
    smiles_whole: str | None  # canonical SMILES of the whole molecule (EDM's training-set SMILES)
    n_fragments: int
    error: str | None


_CHEM = None


def _rdkit():
    """``rdkit.Chem``, imported on first use with RDKit's error log silenced (failures are reported instead)."""
    global _CHEM
    if _CHEM is None:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        _CHEM = Chem
    return _CHEM


def build_mol(z: Sequence[int], bonds: np.ndarray, charges: Sequence[int] | None = None, single: bool = False):
    """RDKit RWMol with the given atoms and bonds ``[n_bonds, 3]`` rows ``(i, j, code)``, codes 1/2/3/4 (aromatic)."""
    Chem = _rdkit()
    types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE, 4: Chem.BondType.AROMATIC}
    mol = Chem.RWMol()
    for index, number in enumerate(z):
        atom = Chem.Atom(int(number))
        if charges is not None and charges[index]:
            atom.SetFormalCharge(int(charges[index]))
        mol.AddAtom(atom)
    for i, j, code in np.asarray(bonds, dtype=np.int64).reshape(-1, 3).tolist():
        code = 1 if single else code
        mol.AddBond(i, j, types[code])
        if code == 4:
            mol.GetBondBetweenAtoms(i, j).SetIsAromatic(True)
            mol.GetAtomWithIdx(i).SetIsAromatic(True)
            mol.GetAtomWithIdx(j).SetIsAromatic(True)
    return mol


def _sanitized_smiles(Chem, mol) -> tuple[str | None, str | None]:
    try:
        Chem.SanitizeMol(mol)
    except ValueError as exc:
        return None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return Chem.MolToSmiles(mol), None


def check_one(item: Item) -> ValidityResult:
    """Validity of one molecule item (see :data:`Item`)."""
    Chem = _rdkit()
    z, bonds, charges, single = item
    try:
        mol = build_mol(z, bonds, charges, single)
    except (RuntimeError, ValueError) as exc:  # e.g. a bond to an atom index that does not exist
        return ValidityResult(False, None, None, 0, f"cannot build molecule: {exc}")
    whole, error = _sanitized_smiles(Chem, mol)
    if whole is None:
        return ValidityResult(False, None, None, 0, f"sanitization failed: {error}")
    if len(Chem.GetMolFrags(mol)) <= 1:
        return ValidityResult(True, whole, whole, 1, None)
    fragments = Chem.GetMolFrags(mol, asMols=True)
    largest = max(fragments, key=lambda m: m.GetNumAtoms())
    smiles, error = _sanitized_smiles(Chem, largest)
    # EDM keeps the molecule as valid even if its largest fragment alone does not sanitize (smiles None)
    return ValidityResult(True, smiles, whole, len(fragments), error)


def _check_chunk(items: list[Item]) -> list[ValidityResult]:
    return [check_one(item) for item in items]


def default_workers() -> int:
    """Worker processes used when none are asked for: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def validate_many(items: Sequence[Item], workers: int | None = None, chunk_size: int = 256,
                  min_parallel: int = 1000) -> list[ValidityResult]:
    """:func:`check_one` over many items, in ``workers`` processes when there are at least ``min_parallel``."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(items) < min_parallel:
        return _check_chunk(list(items))
    chunks = [list(items[start:start + chunk_size]) for start in range(0, len(items), chunk_size)]
    return _flatten(run_in_pool(_check_chunk, chunks, workers))


def run_in_pool(function, chunks: list, workers: int) -> Iterable:
    """``map(function, chunks)`` in a process pool (fork where available: workers need no re-import)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(min(workers, len(chunks))) as pool:
        return pool.map(function, chunks, chunksize=1)


def _flatten(parts: Iterable[list]) -> list:
    out: list = []
    for part in parts:
        out.extend(part)
    return out
