"""Records <-> ASE Atoms (positions, numbers, cell, pbc, formal charges, info, fixed atoms)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.record import make_record

FORMAL_CHARGE_ARRAY = "formal_charges"  # name of the per-atom array in Atoms.arrays


def record_from_ase(atoms: Atoms, name: str | None = None) -> Data:
    """Record of an ASE Atoms object.

    A non-zero cell with any periodic direction makes the record periodic (cell, pbc and
    fractional coordinates). ``atoms.arrays['formal_charges']`` becomes the formal charges,
    a ``FixAtoms`` constraint the ``fixed`` mask, and ``atoms.info`` is kept in ``info['ase']``.
    """
    positions = atoms.get_positions()  # [n_atoms, 3]
    periodic = bool(np.any(atoms.pbc)) and abs(atoms.cell.volume) > 0
    charges = atoms.arrays.get(FORMAL_CHARGE_ARRAY)
    fixed = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            fixed[constraint.get_indices()] = True
    info = {"ase": dict(atoms.info)} if atoms.info else None
    title = name if name is not None else atoms.info.get("name")
    return make_record(
        positions,
        atoms.get_atomic_numbers(),
        formal_charges=None if charges is None else np.asarray(charges).astype(np.int64),
        cell=np.asarray(atoms.cell[:]) if periodic else None,
        pbc=[bool(p) for p in atoms.pbc] if periodic else None,
        fixed=fixed,
        name=title,
        info=info,
    )


def record_to_ase(data: Data) -> Atoms:
    """ASE Atoms of a record; a periodic record keeps its cell and pbc.

    Formal charges go to ``arrays['formal_charges']``, fixed atoms to a ``FixAtoms`` constraint,
    properties ``y`` to ``info['y']`` and the name to ``info['name']``.
    """
    kwargs = {}
    if K.CELL in data:
        kwargs["cell"] = data[K.CELL].reshape(3, 3).double().numpy()
        kwargs["pbc"] = data[K.PBC].reshape(3).numpy() if K.PBC in data else True
    atoms = Atoms(numbers=data[K.ATOMIC_NUMBERS].numpy(), positions=data[K.POS].double().numpy(), **kwargs)
    if K.FORMAL_CHARGES in data:
        atoms.set_array(FORMAL_CHARGE_ARRAY, data[K.FORMAL_CHARGES].numpy().astype(np.int64))
    if K.FIXED in data and bool(data[K.FIXED].any()):
        atoms.set_constraint(FixAtoms(indices=np.flatnonzero(data[K.FIXED].numpy())))
    if K.INFO in data:
        atoms.info.update(data[K.INFO].get("ase", {}))
    if K.PROPERTIES in data:
        atoms.info["y"] = data[K.PROPERTIES].reshape(-1).tolist()
    if K.NAME in data and data[K.NAME] is not None:
        atoms.info["name"] = str(data[K.NAME])
    return atoms
