"""Lossless converters between structure records and RDKit, ASE and pymatgen objects.

Each library lives in its own module so that importing one does not import the others:

- :mod:`.rdkit_mol`: :func:`record_from_rdkit`, :func:`record_to_rdkit`
- :mod:`.ase_atoms`: :func:`record_from_ase`, :func:`record_to_ase`
- :mod:`.pymatgen_objects`: :func:`record_from_pymatgen`, :func:`record_to_pymatgen`
"""

from importlib import import_module

_WHERE = {
    "record_from_rdkit": ".rdkit_mol",
    "record_to_rdkit": ".rdkit_mol",
    "record_from_ase": ".ase_atoms",
    "record_to_ase": ".ase_atoms",
    "record_from_pymatgen": ".pymatgen_objects",
    "record_to_pymatgen": ".pymatgen_objects",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(name)
