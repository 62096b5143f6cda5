"""Readers: files and folders -> structure records.

:func:`read_structures` picks a reader from the file extension (``.gz`` is looked through)
and yields records; folders are read file by file in sorted order. Readers for each kind
of input live in their own module and register their extensions in :data:`READERS`:

- :mod:`.molecules`: SDF/MOL, XYZ, extended XYZ
- :mod:`.qm9`: qm9pack, raw ``dsgdb9nsd_*.xyz``, EDM ``.npz``
- :mod:`.geom`: GEOM-drugs pickles
- :mod:`.crystals`: CDVAE CSV, CIF, ASE databases
- :mod:`.proteins`: PDB/mmCIF receptors + ligand -> pocket records (not in READERS: see that module)
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from molgen.data.readers.base import ReadPolicy, SkipLog, logical_suffix
from molgen.errors import InputError

if TYPE_CHECKING:
    from torch_geometric.data import Data

# extension -> (module, function); functions have the signature (path, policy) -> Iterator[Data]
READERS: dict[str, tuple[str, str]] = {
    ".sdf": ("molecules", "read_sdf"),
    ".sd": ("molecules", "read_sdf"),
    ".mol": ("molecules", "read_sdf"),
    ".xyz": ("molecules", "read_xyz"),
    ".extxyz": ("molecules", "read_xyz"),
    ".npz": ("qm9", "read_edm_npz"),
    ".pickle": ("geom", "read_geom_pickle"),
    ".pkl": ("geom", "read_geom_pickle"),
    ".cif": ("crystals", "read_cif"),
    ".mmcif": ("crystals", "read_cif"),
    ".csv": ("tables", "read_csv"),
    ".db": ("crystals", "read_ase_db"),
}


def supported_extensions() -> list[str]:
    """Extensions :func:`read_structures` understands (each also with ``.gz``)."""
    return sorted(READERS)


def reader_for(path: str | Path):
    """The reader function for a file, chosen by extension; InputError if none fits."""
    suffix = logical_suffix(path)
    if suffix not in READERS:
        raise InputError(
            path, f"unsupported file type '{suffix or Path(path).name}'; supported: {', '.join(supported_extensions())}"
        )
    module, function = READERS[suffix]
    return getattr(import_module(f"molgen.data.readers.{module}"), function)


def read_structures(path: str | Path, policy: ReadPolicy | None = None) -> Iterator[Data]:
    """Yield every structure record of a file or of the supported files in a folder.

    Parameters
    ----------
    path : file (optionally ``.gz``) or folder.
    policy : error handling; default raises :class:`InputError` at the first bad record.
        With ``ReadPolicy("skip")`` bad records are logged in ``policy.skipped``.
    """
    policy = policy or ReadPolicy()
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and logical_suffix(p) in READERS)
        if not files:
            raise InputError(path, f"folder holds no readable structure files ({', '.join(supported_extensions())})")
        for file in files:
            yield from reader_for(file)(file, policy)
        return
    if not path.exists():
        raise InputError(path, "file not found")
    yield from reader_for(path)(path, policy)


def read_all(path: str | Path, policy: ReadPolicy | None = None) -> list[Data]:
    """All records of :func:`read_structures` as a list."""
    return list(read_structures(path, policy))


__all__ = ["READERS", "ReadPolicy", "SkipLog", "read_structures", "read_all", "reader_for", "supported_extensions"]
