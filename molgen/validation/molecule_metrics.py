"""Molecule metrics: stability, validity, connectivity, uniqueness, novelty, under a named protocol.

Definitions (fractions in [0, 1]; ``n`` counts every structure, unreadable ones included, as failures):

- ``atom_stability``: stable atoms / atoms of the readable structures;
- ``mol_stability``: structures whose atoms are all stable / n;
- ``validity``: structures whose RDKit molecule sanitizes / n (EDM: ``len(valid) / len(generated)``);
- ``connectivity``: structures whose perceived bond graph is a single fragment / n;
- ``uniqueness``: distinct largest-fragment SMILES / valid structures (EDM's ``len(set(valid)) / len(valid)``);
- ``valid_and_unique``: distinct valid SMILES / n (validity x uniqueness);
- ``novelty`` (with a reference): distinct valid SMILES absent from the reference SMILES / distinct valid SMILES.

Stability and bond perception run vectorised over the whole set (:func:`molgen.validation.bonds.edm_bonds_batch`);
RDKit sanitization runs in worker processes (:func:`molgen.validation.rdkit_validity.validate_many`).

>>> import numpy as np
>>> water = Molecule(np.array([8, 1, 1]), np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0.0]]))
>>> report = evaluate_molecules([water], "edm", workers=1)
>>> report.metrics["mol_stability"], report.metrics["validity"], report.rows[0]["smiles"]
(1.0, 1.0, '[H]O[H]')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from molgen.validation.bonds import edm_bonds_batch
from molgen.validation.protocols import Protocol, charges_can_sum_to, get_protocol
from molgen.validation.rdkit_validity import ValidityResult, validate_many

OVERLAP_ANGSTROM = 0.1  # two atoms closer than this are reported as lying on top of each other
_SYMBOLS: tuple[str, ...] | None = None


def _symbol(z: int) -> str:
    global _SYMBOLS
    if _SYMBOLS is None:
        from molgen.elements import SYMBOLS

        _SYMBOLS = SYMBOLS
    return _SYMBOLS[int(z)] if 0 < int(z) < len(_SYMBOLS) else f"Z{int(z)}"


@dataclass
class Molecule:
    """The arrays a molecule check needs.

    Attributes
    ----------
    z : ``[n_atoms]`` atomic numbers.
    pos : ``[n_atoms, 3]`` positions in Å.
    charges : ``[n_atoms]`` formal charges, or None when unknown.
    bonds : ``[n_bonds, 2]`` atom pairs from the file, or None.
    bond_types : ``[n_bonds]`` SDF codes (1, 2, 3, 4 aromatic), with ``bonds``.
    name : identifier for the per-structure table.
    """

    z: np.ndarray
    pos: np.ndarray
    charges: np.ndarray | None = None
    bonds: np.ndarray | None = None
    bond_types: np.ndarray | None = None
    name: str | None = None


def molecule_from_record(record: Any) -> Molecule:
    """:class:`Molecule` of a structure record (:mod:`molgen.data.record`)."""
    from molgen import keys as K

    bonds = record[K.BOND_INDEX].t().numpy() if K.BOND_INDEX in record else None
    return Molecule(
        z=record[K.ATOMIC_NUMBERS].numpy(),
        pos=record[K.POS].double().numpy(),
        charges=record[K.FORMAL_CHARGES].numpy() if K.FORMAL_CHARGES in record else None,
        bonds=bonds,
        bond_types=record[K.BOND_TYPE].numpy() if bonds is not None else None,
        name=record[K.NAME] if K.NAME in record else None,
    )


@dataclass
class Failure:
    """A structure that could not be read: it counts in ``n`` and fails every check."""

    name: str
    reason: str


@dataclass
class MoleculeReport:
    """Metrics of a set, one row per structure, and what the metrics were computed with."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    protocol: str
    smiles: list[str | None] = field(default_factory=list)  # largest-fragment SMILES per readable structure
    bonds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # perceived (pairs, orders)


@dataclass
class Perceived:
    """Bonds and stability of a set of molecules, before RDKit."""

    bonds: list[tuple[np.ndarray, np.ndarray]]  # (pairs [n_bonds, 2] i<j, orders [n_bonds], 1.5 = aromatic)
    bond_codes: list[np.ndarray]  # [n_bonds] SDF codes (1, 2, 3, 4)
    atom_stable: list[np.ndarray]  # [n_atoms] bool
    valence: list[np.ndarray]  # [n_atoms] float
    n_fragments: np.ndarray  # [n_molecules]
    shortest: np.ndarray  # [n_molecules] shortest interatomic distance, Å
    errors: list[str | None]  # bond perception failures (rdkit timeouts, missing file bonds)
    assigned_charges: dict[int, np.ndarray] = field(default_factory=dict)  # from rdDetermineBonds


def perceive(molecules: Sequence[Molecule], protocol: Protocol, rdkit_timeout: float = 10.0,
             workers: int | None = None) -> Perceived:
    """Bonds, valences and stability of every molecule under ``protocol``."""
    if not molecules:
        return Perceived([], [], [], [], np.zeros(0, np.int64), np.zeros(0), [])
    edm, shortest = edm_bonds_batch([m.z for m in molecules], [m.pos for m in molecules])
    bonds: list[tuple[np.ndarray, np.ndarray]] = []
    codes: list[np.ndarray] = []
    errors: list[str | None] = [None] * len(molecules)
    determined: dict[int, Any] = {}
    if protocol.bonds == "rdkit":
        from molgen.validation.rdkit_bonds import determine_bonds_many

        determined = dict(enumerate(determine_bonds_many(molecules, timeout=rdkit_timeout, workers=workers)))
    for index, molecule in enumerate(molecules):
        source = protocol.bonds
        if source == "auto":
            source = "file" if molecule.bonds is not None else "edm"
        if source == "edm":
            pairs, orders = edm[index]
            bonds.append((pairs, orders.astype(np.float64)))
            codes.append(orders.astype(np.int64))
            continue
        if source == "file":
            if molecule.bonds is None:
                errors[index] = "no bonds in the input (--bonds file)"
                pairs, types = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
            else:
                pairs = np.sort(np.asarray(molecule.bonds, dtype=np.int64).reshape(-1, 2), axis=1)
                types = np.asarray(molecule.bond_types, dtype=np.int64).reshape(-1)
        else:
            result = determined[index]
            if result.error is not None:
                errors[index] = result.error
            pairs, types = result.pairs, result.codes
        orders = np.where(types == 4, 1.5, types).astype(np.float64)
        if (types == 4).any():
            orders = _kekule_orders(molecule, pairs, types, orders)
        bonds.append((pairs, orders))
        codes.append(types)

    if protocol.name == "charged":  # not bound to EDM's rules: coinciding atoms make a structure fail
        for index in np.flatnonzero(shortest < OVERLAP_ANGSTROM):
            errors[index] = errors[index] or f"atoms on top of each other ({shortest[index]:.3f} Å apart)"
    sizes = np.array([len(m.z) for m in molecules], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n_total = int(offsets[-1])
    z_all = np.concatenate([np.asarray(m.z, dtype=np.int64) for m in molecules]) if molecules else np.zeros(0, np.int64)
    heads = [pairs[:, 0] + offsets[i] for i, (pairs, _) in enumerate(bonds)]
    tails = [pairs[:, 1] + offsets[i] for i, (pairs, _) in enumerate(bonds)]
    weights = [orders for _, orders in bonds]
    head = np.concatenate(heads) if heads else np.zeros(0, np.int64)
    tail = np.concatenate(tails) if tails else np.zeros(0, np.int64)
    weight = np.concatenate(weights) if weights else np.zeros(0)
    valence = np.bincount(head, weight, minlength=n_total) + np.bincount(tail, weight, minlength=n_total)

    charges_all = _charges(molecules, protocol, sizes, {
        i: r.charges for i, r in determined.items() if r.charges is not None and molecules[i].charges is None
    })
    stable = _stable_atoms(z_all, valence, charges_all, protocol)
    n_fragments = _fragment_counts(head, tail, n_total, offsets)
    split = offsets[1:-1]
    return Perceived(
        bonds=bonds, bond_codes=codes, atom_stable=np.split(stable, split), valence=np.split(valence, split),
        n_fragments=n_fragments, shortest=shortest, errors=errors,
        assigned_charges={i: r.charges for i, r in determined.items() if r.charges is not None},
    )


_CHARGE_UNKNOWN = -100


def _kekule_orders(molecule: Molecule, pairs: np.ndarray, types: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """[n_bonds] bond orders with aromatic bonds replaced by a Kekulé structure (RDKit), for valence counting.

    When no Kekulé structure exists the aromatic bonds keep order 1.5 (and their atoms usually fail).
    """
    from molgen.validation.rdkit_validity import _rdkit, build_mol

    Chem = _rdkit()
    rows = np.concatenate([pairs, types[:, None]], axis=1)
    mol = build_mol(np.asarray(molecule.z).tolist(), rows, None if molecule.charges is None else list(molecule.charges))
    try:
        mol.UpdatePropertyCache(strict=False)
        Chem.GetSymmSSSR(mol)
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except ValueError:
        return fallback
    order_of = {Chem.BondType.SINGLE: 1.0, Chem.BondType.DOUBLE: 2.0, Chem.BondType.TRIPLE: 3.0}
    return np.array([order_of.get(mol.GetBondBetweenAtoms(int(i), int(j)).GetBondType(), 1.5) for i, j in pairs])


def _charges(molecules: Sequence[Molecule], protocol: Protocol, sizes: np.ndarray,
             assigned: dict[int, np.ndarray]) -> np.ndarray:
    """[n_atoms] formal charges for the valence check: the input's, else those rdDetermineBonds assigned."""
    if not protocol.use_charges:
        return np.zeros(int(sizes.sum()), dtype=np.int64)
    parts = []
    for index, m in enumerate(molecules):
        if m.charges is not None:
            parts.append(np.asarray(m.charges, dtype=np.int64))
        elif index in assigned:
            parts.append(np.asarray(assigned[index], dtype=np.int64))
        else:
            parts.append(np.full(len(m.z), _CHARGE_UNKNOWN))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _stable_atoms(z: np.ndarray, valence: np.ndarray, charges: np.ndarray, protocol: Protocol) -> np.ndarray:
    """[n_atoms] bool: summed bond order allowed for the element (and charge) under the protocol."""
    doubled = np.rint(valence * 2).astype(np.int64)
    integral = (doubled % 2 == 0) & (np.abs(valence * 2 - doubled) < 1e-6)
    value = doubled // 2
    stable = np.zeros(len(z), dtype=bool)
    keys = np.stack([z, charges], axis=1) if len(z) else np.zeros((0, 2), np.int64)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for k, (number, charge) in enumerate(unique.tolist()):
        allowed = protocol.allowed(_symbol(number), None if charge == _CHARGE_UNKNOWN else charge)
        if not allowed:
            continue
        members = inverse == k
        stable[members] = integral[members] & np.isin(value[members], allowed)
    return stable


def _fragment_counts(head: np.ndarray, tail: np.ndarray, n_total: int, offsets: np.ndarray) -> np.ndarray:
    """[n_molecules] number of connected components of each molecule's bond graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_molecules = len(offsets) - 1
    if n_total == 0:
        return np.zeros(n_molecules, dtype=np.int64)
    graph = coo_matrix((np.ones(len(head)), (head, tail)), shape=(n_total, n_total))
    _, labels = connected_components(graph, directed=False)
    owner = np.repeat(np.arange(n_molecules), np.diff(offsets))
    # each component lies inside one molecule: count distinct labels per molecule
    first = np.unique(labels, return_index=True)[1]
    return np.bincount(owner[first], minlength=n_molecules)


def validity_items(molecules: Sequence[Molecule], perceived: Perceived, protocol: Protocol) -> list[tuple]:
    """Inputs of :func:`molgen.validation.rdkit_validity.check_one`, bonds in EDM's order.

    EDM adds bond (i, j) with i > j, row by row over its adjacency matrix; the same order is used here.
    """
    items = []
    for index, molecule in enumerate(molecules):
        pairs, _ = perceived.bonds[index]
        codes = perceived.bond_codes[index]
        high, low = np.maximum(pairs[:, 0], pairs[:, 1]), np.minimum(pairs[:, 0], pairs[:, 1])
        order = np.lexsort((low, high))
        rows = np.stack([high[order], low[order], codes[order]], axis=1)
        charges = None
        if protocol.use_charges:
            if molecule.charges is not None:
                charges = np.asarray(molecule.charges, dtype=np.int64).tolist()
            elif index in perceived.assigned_charges:
                charges = perceived.assigned_charges[index].tolist()
            else:
                charges = [
                    protocol.implied_charge(_symbol(z), v)
                    for z, v in zip(np.asarray(molecule.z).tolist(), perceived.valence[index].tolist())
                ]
        items.append((np.asarray(molecule.z, dtype=np.int64).tolist(), rows, charges, protocol.single_bonds_for_validity))
    return items


def split_non_finite(molecules: Sequence[Molecule], failures: Sequence[Failure] = ()
                     ) -> tuple[list[Molecule], list[Failure]]:
    """Molecules with NaN / inf coordinates moved to the failures (without this a structure whose coordinates are
    all NaN has no bonds, and its largest fragment -- one atom -- would pass EDM's validity check)."""
    good, bad = [], list(failures)
    for index, molecule in enumerate(molecules):
        if np.isfinite(molecule.pos).all():
            good.append(molecule)
        else:
            bad.append(Failure(molecule.name or f"structure {index}", "non-finite (NaN or inf) coordinates"))
    return good, bad


def evaluate_molecules(
    molecules: Sequence[Molecule],
    protocol: Protocol | str = "edm",
    *,
    failures: Sequence[Failure] = (),
    reference_smiles: set[str] | frozenset[str] | None = None,
    workers: int | None = None,
    rdkit_timeout: float = 10.0,
) -> MoleculeReport:
    """Every molecule metric of a set under ``protocol``.

    Parameters
    ----------
    molecules : readable structures.
    protocol : a :class:`Protocol` or its name (``edm``, ``edm-geom``, ``charged``).
    failures : structures that could not be read; they count in ``n`` and fail every check.
    reference_smiles : SMILES of the reference (training) set through the same pipeline; gives ``novelty``.
    workers : processes for RDKit (default: all usable CPUs).
    rdkit_timeout : seconds allowed per molecule for rdDetermineBonds (``--bonds rdkit``).
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    molecules, failures = split_non_finite(molecules, failures)
    perceived = perceive(molecules, protocol, rdkit_timeout=rdkit_timeout, workers=workers)
    results: list[ValidityResult] = validate_many(validity_items(molecules, perceived, protocol), workers=workers)
    for index, error in enumerate(perceived.errors):
        if error is not None:
            results[index] = ValidityResult(False, None, None, 0, error)

    n = len(molecules) + len(failures)
    n_atoms = sum(len(m.z) for m in molecules)
    stable_atoms = sum(int(s.sum()) for s in perceived.atom_stable)
    balanced = implied_charges_balance(molecules, perceived, protocol)
    mol_stable = [bool(s.all()) and perceived.errors[i] is None and balanced[i]
                  for i, s in enumerate(perceived.atom_stable)]
    connected = [int(k) == 1 and perceived.errors[i] is None for i, k in enumerate(perceived.n_fragments)]
    valid_smiles = [r.smiles for r in results if r.valid]
    unique = set(valid_smiles)
    metrics: dict[str, Any] = {
        "n": n,
        "n_unreadable": len(failures),
        "protocol": protocol.name,
        "atom_stability": stable_atoms / n_atoms if n_atoms else 0.0,
        "mol_stability": sum(mol_stable) / n if n else 0.0,
        "validity": len(valid_smiles) / n if n else 0.0,
        "connectivity": sum(connected) / n if n else 0.0,
        "uniqueness": len(unique) / len(valid_smiles) if valid_smiles else 0.0,
        "valid_and_unique": len(unique) / n if n else 0.0,
        "atoms_overlapping": int(np.sum(perceived.shortest < OVERLAP_ANGSTROM)),
    }
    novel: set[str] = set()
    if reference_smiles is not None:
        novel = {s for s in unique if s not in reference_smiles}
        metrics["novelty"] = len(novel) / len(unique) if unique else 0.0

    rows = []
    seen: set[str] = set()
    for index, molecule in enumerate(molecules):
        result = results[index]
        duplicate = result.valid and result.smiles in seen
        if result.valid:
            seen.add(result.smiles)
        row = {
            "index": index,
            "name": molecule.name or "",
            "n_atoms": len(molecule.z),
            "stable_atoms": int(perceived.atom_stable[index].sum()),
            "mol_stable": mol_stable[index],
            "valid": result.valid,
            "connected": connected[index],
            "n_fragments": int(perceived.n_fragments[index]),
            "duplicate": duplicate,
            "smiles": result.smiles or "",
            "reason": _reason(molecule, perceived, index, result, duplicate, balanced[index]),
        }
        if reference_smiles is not None:
            row["novel"] = bool(result.valid and result.smiles in novel)
        rows.append(row)
    for failure in failures:
        row = {"index": None, "name": failure.name, "n_atoms": 0, "stable_atoms": 0, "mol_stable": False,
               "valid": False, "connected": False, "n_fragments": 0, "duplicate": False, "smiles": "",
               "reason": f"unreadable: {failure.reason}"}
        if reference_smiles is not None:
            row["novel"] = False
        rows.append(row)
    return MoleculeReport(
        metrics=metrics, rows=rows, protocol=protocol.name,
        smiles=[r.smiles if r.valid else None for r in results], bonds=perceived.bonds,
    )


def implied_charges_balance(molecules: Sequence[Molecule], perceived: Perceived, protocol: Protocol) -> list[bool]:
    """[n_molecules] whether the formal charges a charge-aware protocol implies can make the molecule neutral.

    Only molecules whose charges are implied (no charges in the input, none from rdDetermineBonds) are
    constrained; under the EDM protocols, or with given charges, every molecule passes this check.
    """
    out = []
    for index, molecule in enumerate(molecules):
        if not protocol.use_charges or molecule.charges is not None or index in perceived.assigned_charges:
            out.append(True)
            continue
        options = [protocol.charge_options(_symbol(z), v)
                   for z, v in zip(np.asarray(molecule.z).tolist(), perceived.valence[index].tolist())]
        out.append(charges_can_sum_to(options, 0))
    return out


def _reason(molecule: Molecule, perceived: Perceived, index: int, result: ValidityResult, duplicate: bool,
            balanced: bool = True) -> str:
    """Why a structure failed, first problem first ('' when it passed every check)."""
    reasons = []
    if perceived.shortest[index] < OVERLAP_ANGSTROM:
        reasons.append(f"atoms on top of each other ({perceived.shortest[index]:.3f} Å apart)")
    if perceived.errors[index] is not None and perceived.errors[index] not in reasons:
        reasons.append(perceived.errors[index])
    stable = perceived.atom_stable[index]
    if not stable.all():
        bad = np.flatnonzero(~stable)
        first = int(bad[0])
        valence = float(perceived.valence[index][first])
        shown = f"{valence:g}"
        reasons.append(
            f"{len(bad)} unstable atom(s), first {_symbol(int(molecule.z[first]))}{first} with valence {shown}"
        )
    if not balanced:
        reasons.append("the implied formal charges cannot sum to zero")
    if not result.valid and result.error and result.error not in reasons:
        reasons.append(result.error)
    if perceived.n_fragments[index] > 1:
        reasons.append(f"{int(perceived.n_fragments[index])} fragments")
    if duplicate:
        reasons.append("duplicate SMILES")
    return "; ".join(reasons)


def reference_smiles_of(molecules: Sequence[Molecule], protocol: Protocol | str = "edm",
                        workers: int | None = None) -> set[str]:
    """SMILES of a reference (training) set for novelty, by EDM's rule: the whole molecule's SMILES of each
    structure that sanitizes (EDM's ``compute_qm9_smiles``; identical to the largest fragment when connected)."""
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    molecules, _ = split_non_finite(molecules)  # unusable reference structures are left out
    perceived = perceive(molecules, protocol, workers=workers)
    results = validate_many(validity_items(molecules, perceived, protocol), workers=workers)
    return {r.smiles_whole for r in results if r.smiles_whole is not None}
