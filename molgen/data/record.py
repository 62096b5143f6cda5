"""The one structure record used for molecules, crystals and pockets.

A record is a :class:`torch_geometric.data.Data` whose fields are named in
:mod:`molgen.keys`. :func:`make_record` builds one from plain arrays and checks
it, so every reader produces the same thing.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from molgen import keys as K
from molgen.elements import MAX_ATOMIC_NUMBER


class RecordError(ValueError):
    """A record's arrays are inconsistent (wrong shapes, NaN, unknown elements)."""


def make_record(
    positions: Any,
    atomic_numbers: Any,
    *,
    formal_charges: Any | None = None,
    cell: Any | None = None,
    pbc: Sequence[bool] | None = None,
    bonds: Any | None = None,
    bond_types: Any | None = None,
    properties: Sequence[float] | None = None,
    fixed: Any | None = None,
    name: str | None = None,
    info: Mapping[str, Any] | None = None,
    pos_dtype: torch.dtype = torch.float64,
    **extra: Any,
) -> Data:
    """Build and check a structure record.

    Parameters
    ----------
    positions : ``[n_atoms, 3]`` Cartesian coordinates in Å.
    atomic_numbers : ``[n_atoms]`` integers 1..118.
    formal_charges : ``[n_atoms]`` integers, only when known.
    cell : ``[3, 3]`` lattice vectors as rows in Å; makes the record periodic and adds
        fractional coordinates wrapped into [0, 1).
    pbc : periodic directions, default all three when a cell is given.
    bonds : ``[n_bonds, 2]`` (or ``[2, n_bonds]``) atom index pairs, each bond once.
    bond_types : ``[n_bonds]`` SDF bond codes (1, 2, 3, 4 = aromatic); default single.
    properties : per-structure numbers, stored as ``y`` with shape ``[1, n_props]``.
    fixed : ``[n_atoms]`` bool mask of context atoms; default all False.
    name : identifier for messages and export.
    info : free-form metadata kept for export (SDF tags, extxyz info).
    extra : further per-atom or per-structure tensors (e.g. protein features), stored as given.

    Returns
    -------
    Data with ``pos [n_atoms, 3]``, ``z [n_atoms]``, ``fixed [n_atoms]`` and the optional fields.

    Raises
    ------
    RecordError when shapes disagree, coordinates are not finite or an element is unknown.
    """
    pos = torch.as_tensor(np.asarray(positions, dtype=np.float64), dtype=pos_dtype)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise RecordError(f"positions must have shape [n_atoms, 3], got {tuple(pos.shape)}")
    n_atoms = pos.shape[0]
    if n_atoms == 0:
        raise RecordError("structure has no atoms")
    if not torch.isfinite(pos).all():
        bad = int((~torch.isfinite(pos).all(dim=1)).nonzero()[0])
        raise RecordError(f"atom {bad} has non-finite coordinates")
    z = torch.as_tensor(np.asarray(atomic_numbers, dtype=np.int64))
    if z.shape != (n_atoms,):
        raise RecordError(f"{n_atoms} positions but atomic numbers of shape {tuple(z.shape)}")
    if (z < 1).any() or (z > MAX_ATOMIC_NUMBER).any():
        bad = int(((z < 1) | (z > MAX_ATOMIC_NUMBER)).nonzero()[0])
        raise RecordError(f"atom {bad} has atomic number {int(z[bad])}, not an element")

    data = Data(pos=pos, z=z)
    data[K.FIXED] = (
        torch.zeros(n_atoms, dtype=torch.bool) if fixed is None else torch.as_tensor(np.asarray(fixed, dtype=bool))
    )
    if data[K.FIXED].shape != (n_atoms,):
        raise RecordError(f"fixed mask has shape {tuple(data[K.FIXED].shape)}, expected ({n_atoms},)")
    if formal_charges is not None:
        charges = torch.as_tensor(np.asarray(formal_charges, dtype=np.int64))
        if charges.shape != (n_atoms,):
            raise RecordError(f"formal charges of shape {tuple(charges.shape)} for {n_atoms} atoms")
        data[K.FORMAL_CHARGES] = charges
    if cell is not None:
        _set_cell(data, cell, pbc, pos_dtype)
    if bonds is not None:
        _set_bonds(data, bonds, bond_types, n_atoms)
    if properties is not None:
        y = torch.as_tensor(np.asarray(properties, dtype=np.float64), dtype=torch.float32).reshape(1, -1)
        data[K.PROPERTIES] = y
    if name is not None:
        data[K.NAME] = str(name)
    if info:
        data[K.INFO] = dict(info)
    for key, value in extra.items():
        data[key] = value
    return data


def _set_cell(data: Data, cell: Any, pbc: Sequence[bool] | None, dtype: torch.dtype) -> None:
    lattice = np.array(cell, dtype=np.float64).reshape(3, 3)  # a copy: inputs may be read-only
    if not np.isfinite(lattice).all():
        raise RecordError("cell has non-finite entries")
    volume = abs(float(np.linalg.det(lattice)))
    if volume < 1e-6:
        raise RecordError(f"cell is singular (volume {volume:.3g} Å^3): lattice vectors are not independent")
    frac = np.linalg.solve(lattice.T, data[K.POS].double().numpy().T).T  # [n_atoms, 3]
    frac = frac - np.floor(frac)
    frac[frac >= 1.0] = 0.0  # rounding can give exactly 1.0
    data[K.CELL] = torch.as_tensor(lattice, dtype=dtype).unsqueeze(0)  # [1, 3, 3]
    data[K.FRAC_POS] = torch.as_tensor(frac, dtype=dtype)  # [n_atoms, 3]
    data[K.PBC] = torch.as_tensor([True, True, True] if pbc is None else list(pbc), dtype=torch.bool).reshape(1, 3)


def _set_bonds(data: Data, bonds: Any, bond_types: Any | None, n_atoms: int) -> None:
    pairs = np.asarray(bonds, dtype=np.int64)
    if pairs.size == 0:
        pairs = pairs.reshape(0, 2)
    if pairs.ndim == 2 and pairs.shape[0] == 2 and pairs.shape[1] != 2:
        pairs = pairs.T
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise RecordError(f"bonds must have shape [n_bonds, 2], got {pairs.shape}")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= n_atoms):
        raise RecordError(f"a bond refers to an atom outside 0..{n_atoms - 1}")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise RecordError("a bond joins an atom to itself")
    types = np.ones(len(pairs), dtype=np.int64) if bond_types is None else np.asarray(bond_types, dtype=np.int64)
    if types.shape != (len(pairs),):
        raise RecordError(f"{len(pairs)} bonds but {types.shape} bond types")
    if len(types) and (types.min() < 1 or types.max() > 4):
        raise RecordError("bond types must be 1 (single), 2 (double), 3 (triple) or 4 (aromatic)")
    ordered = np.sort(pairs, axis=1)
    data[K.BOND_INDEX] = torch.as_tensor(ordered.T.copy())  # [2, n_bonds]
    data[K.BOND_TYPE] = torch.as_tensor(types)  # [n_bonds]


def is_periodic(data: Data) -> bool:
    """True when the record carries a lattice."""
    return K.CELL in data


def n_atoms(data: Data) -> int:
    """Number of atoms in a record."""
    return int(data[K.POS].shape[0])
