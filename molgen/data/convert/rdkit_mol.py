"""Records <-> RDKit molecules (positions, elements, formal charges, bonds, SD tags, title)."""

from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Geometry import Point3D
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.record import make_record

_BOND_CODE = {
    Chem.BondType.SINGLE: K.BOND_SINGLE,
    Chem.BondType.DOUBLE: K.BOND_DOUBLE,
    Chem.BondType.TRIPLE: K.BOND_TRIPLE,
    Chem.BondType.AROMATIC: K.BOND_AROMATIC,
}
_RDKIT_BOND = {code: bond_type for bond_type, code in _BOND_CODE.items()}


def record_from_rdkit(mol: Chem.Mol, conformer_id: int = -1, name: str | None = None) -> Data:
    """Record of one conformer of an RDKit molecule.

    Keeps positions ``[n_atoms, 3]``, atomic numbers, formal charges, bonds (dative and other
    exotic bonds become single), the ``_Name`` title and every SD tag (in ``info['tags']``).
    Implicit hydrogens are not added: call ``Chem.AddHs(mol, addCoords=True)`` first if needed.
    """
    if mol.GetNumConformers() == 0:
        raise ValueError("molecule has no 3D conformer")
    conf = mol.GetConformer(conformer_id)
    positions = np.asarray(conf.GetPositions(), dtype=np.float64)  # [n_atoms, 3]
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    charges = [a.GetFormalCharge() for a in mol.GetAtoms()]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    types = [_BOND_CODE.get(b.GetBondType(), K.BOND_SINGLE) for b in mol.GetBonds()]
    tags = mol.GetPropsAsDict(includePrivate=False, includeComputed=False)
    title = name if name is not None else (mol.GetProp("_Name") if mol.HasProp("_Name") else None)
    info = {"tags": {k: v for k, v in tags.items()}} if tags else None
    return make_record(
        positions, numbers, formal_charges=charges, bonds=bonds, bond_types=types, name=title, info=info
    )


def record_to_rdkit(data: Data, sanitize: bool = False) -> Chem.Mol:
    """RDKit molecule with one conformer from a record.

    Uses the record's bonds when present (no bond perception here: see ``molgen.validation``
    for distance-based bonds), its formal charges, title and SD tags. With ``sanitize=True``
    RDKit sanitization runs and may raise.
    """
    rw = Chem.RWMol()
    numbers = data[K.ATOMIC_NUMBERS].tolist()
    charges = data[K.FORMAL_CHARGES].tolist() if K.FORMAL_CHARGES in data else [0] * len(numbers)
    for number, charge in zip(numbers, charges):
        atom = Chem.Atom(int(number))
        atom.SetFormalCharge(int(charge))
        atom.SetNoImplicit(True)
        rw.AddAtom(atom)
    if K.BOND_INDEX in data:
        for (i, j), code in zip(data[K.BOND_INDEX].t().tolist(), data[K.BOND_TYPE].tolist()):
            rw.AddBond(int(i), int(j), _RDKIT_BOND[int(code)])
            if code == K.BOND_AROMATIC:
                rw.GetBondBetweenAtoms(int(i), int(j)).SetIsAromatic(True)
                rw.GetAtomWithIdx(int(i)).SetIsAromatic(True)
                rw.GetAtomWithIdx(int(j)).SetIsAromatic(True)
    conf = Chem.Conformer(len(numbers))
    for index, (x, y, z) in enumerate(data[K.POS].double().tolist()):
        conf.SetAtomPosition(index, Point3D(x, y, z))
    conf.Set3D(True)
    mol = rw.GetMol()
    mol.AddConformer(conf, assignId=True)
    if K.NAME in data and data[K.NAME] is not None:
        mol.SetProp("_Name", str(data[K.NAME]))
    for key, value in (data[K.INFO].get("tags", {}) if K.INFO in data else {}).items():
        _set_prop(mol, key, value)
    mol.UpdatePropertyCache(strict=False)
    if sanitize:
        Chem.SanitizeMol(mol)
    return mol


def _set_prop(mol: Chem.Mol, key: str, value) -> None:
    if isinstance(value, bool):
        mol.SetBoolProp(key, value)
    elif isinstance(value, int):
        mol.SetIntProp(key, value)
    elif isinstance(value, float):
        mol.SetDoubleProp(key, value)
    else:
        mol.SetProp(key, str(value))
