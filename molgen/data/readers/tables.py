"""CSV files: the layout is recognised from the header.

- a ``cif`` column: the CDVAE/DiffCSP crystal layout (:func:`molgen.data.readers.crystals.read_cdvae_csv`);
- ``XYZ_Ang`` and ``Elements`` columns: the qm9pack layout (:func:`molgen.data.readers.qm9.read_qm9pack_csv`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from torch_geometric.data import Data

from molgen.data.readers.base import ReadPolicy, open_text
from molgen.errors import InputError


def csv_columns(path: str | Path) -> list[str]:
    """Column names of a (possibly gzip-compressed) CSV file."""
    with open_text(path) as handle:
        try:
            return next(csv.reader(handle))
        except StopIteration:
            raise InputError(path, "CSV file is empty") from None
        except csv.Error as exc:
            raise InputError(path, f"not a valid CSV header: {exc}") from None


def read_csv(path: Path, policy: ReadPolicy) -> Iterator[Data]:
    """Records of a CSV file whose layout is recognised from its header."""
    columns = set(csv_columns(path))
    if "cif" in columns:
        from molgen.data.readers.crystals import read_cdvae_csv

        yield from read_cdvae_csv(path, policy)
    elif {"XYZ_Ang", "Elements"} <= columns:
        from molgen.data.readers.qm9 import read_qm9pack_csv

        yield from read_qm9pack_csv(path, policy)
    else:
        raise InputError(
            path,
            "CSV layout not recognised: expected a 'cif' column (CDVAE/DiffCSP crystals) "
            "or 'Elements' and 'XYZ_Ang' columns (qm9pack)",
        )
