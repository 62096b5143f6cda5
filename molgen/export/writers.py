"""Write structure records as SDF, XYZ, extended XYZ or CIF, chosen by the file extension.

- ``.sdf``: one molecule block per record with its bonds (``bond_index`` / ``bond_type``; records
  without bonds are written without bonds, so perceive them first, e.g. with
  :mod:`molgen.validation`), formal charges, title and properties as SD tags.
- ``.xyz``: plain multi-structure XYZ; ``.extxyz``: extended XYZ with cell, pbc and info.
- ``.cif``: one data block per record (periodic records; pymatgen's CIF writer).

Files are written to a temporary name and renamed, so a crash never leaves a half-written file;
``.gz`` compresses. :func:`write_structures` with ``append=True`` adds records to an existing file
(used for batch-by-batch output).
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from torch_geometric.data import Data

from molgen import keys as K
from molgen.data.readers.base import logical_suffix
from molgen.elements import symbol
from molgen.errors import InputError

FORMATS = {".sdf": "sdf", ".mol": "sdf", ".xyz": "xyz", ".extxyz": "extxyz", ".cif": "cif"}


def format_of(path: str | Path) -> str:
    """Output format of a path from its extension (``.gz`` looked through)."""
    suffix = logical_suffix(path)
    if suffix not in FORMATS:
        raise InputError(path, f"cannot write '{suffix}' files; use one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def write_structures(
    records: Iterable[Data], path: str | Path, property_names: Sequence[str] = (), append: bool = False
) -> int:
    """Write records to ``path`` in the format of its extension; returns how many were written.

    ``property_names`` name the columns of each record's ``y`` (written as SD tags / extxyz info).
    """
    path = Path(path)
    fmt = format_of(path)
    blocks = [_ENCODERS[fmt](r, property_names) for r in records]
    text = "".join(blocks)
    existing = b""
    if append and path.exists():
        existing = _read_bytes(path)
    payload = existing + text.encode()
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as handle:
        handle.write(gzip.compress(payload) if path.suffix.lower() == ".gz" else payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return len(blocks)


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix.lower() == ".gz" else raw


def _properties(record: Data, names: Sequence[str]) -> dict[str, float]:
    if K.PROPERTIES not in record:
        return {}
    values = record[K.PROPERTIES].reshape(-1).tolist()
    names = list(names) or [f"y{i}" for i in range(len(values))]
    return dict(zip(names, values))


def encode_sdf(record: Data, property_names: Sequence[str] = ()) -> str:
    """One SDF block (V2000, or V3000 past 999 atoms via RDKit) with bonds, charges and tags."""
    from rdkit import Chem

    from molgen.data.convert import record_to_rdkit

    mol = record_to_rdkit(record)
    for name, value in _properties(record, property_names).items():
        mol.SetDoubleProp(name, float(value))
    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    writer.SetKekulize(False)
    writer.write(mol)
    writer.close()
    return buffer.getvalue()


def encode_xyz(record: Data, property_names: Sequence[str] = ()) -> str:
    """Plain XYZ block: count line, a comment with the name, one ``El x y z`` line per atom."""
    pos = record[K.POS].double().numpy()
    numbers = record[K.ATOMIC_NUMBERS].tolist()
    title = str(record[K.NAME]) if K.NAME in record and record[K.NAME] is not None else ""
    lines = [str(len(numbers)), title.replace("\n", " ")]
    lines += [f"{symbol(z):<2} {x:15.8f} {y:15.8f} {w:15.8f}" for z, (x, y, w) in zip(numbers, pos)]
    return "\n".join(lines) + "\n"


def encode_extxyz(record: Data, property_names: Sequence[str] = ()) -> str:
    """Extended XYZ block (ASE's writer): cell, pbc, name, properties and formal charges kept."""
    from ase.io import write

    from molgen.data.convert import record_to_ase

    atoms = record_to_ase(record)
    atoms.info.pop("y", None)
    atoms.info.update(_properties(record, property_names))
    buffer = io.StringIO()
    write(buffer, atoms, format="extxyz")
    return buffer.getvalue()


def encode_cif(record: Data, property_names: Sequence[str] = ()) -> str:
    """One CIF data block (P1) of a periodic record."""
    from pymatgen.io.cif import CifWriter

    from molgen.data.convert import record_to_pymatgen

    if K.CELL not in record:
        raise InputError(None, "CIF output needs periodic structures (records with a cell); use .sdf/.xyz for molecules")
    name = str(record[K.NAME]) if K.NAME in record and record[K.NAME] else "structure"
    text = str(CifWriter(record_to_pymatgen(record)))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    lines = [f"data_{safe}" if line.startswith("data_") else line for line in text.splitlines()]
    return "\n".join(lines) + "\n"


_ENCODERS = {"sdf": encode_sdf, "xyz": encode_xyz, "extxyz": encode_extxyz, "cif": encode_cif}
