"""On-disk storage of many structure records as flat tensors, in shards.

A packed dataset is a folder::

    meta.json            # format version, shard list, field kinds, statistics, skip report
    shard_00000.pt       # dict of flat tensors for a block of structures (torch.save, tensors only)
    ...

Each shard holds, for ``n`` structures with ``m`` atoms and ``b`` bonds in total:

- per-atom fields  ``[m, ...]`` (``pos``, ``z``, ``charges``, ``fixed``, ``frac_pos``, protein features)
- per-structure fields ``[n, ...]`` (``y [n, n_props]``, ``cell [n, 3, 3]``, ``pbc [n, 3]``)
- bond fields ``bond_index [2, b]`` (local atom indices) and ``bond_type [b]``
- offsets ``atom_ptr [n + 1]`` and ``bond_ptr [n + 1]``, and ``names`` (list of str)

Shards are written as the records stream in, so building never holds more than one shard in
memory, and they are opened with ``torch.load(mmap=True, weights_only=True)``, so reading a set
larger than RAM pages in only what is used and a cache file cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch

from molgen import keys as K

if TYPE_CHECKING:
    from torch_geometric.data import Data

FORMAT_VERSION = 1
PER_ATOM = (K.POS, K.ATOMIC_NUMBERS, K.FORMAL_CHARGES, K.FIXED, K.FRAC_POS,
            K.RESIDUE_TYPE, K.RESIDUE_INDEX, K.IS_BACKBONE, K.IS_PROTEIN)
PER_STRUCTURE = (K.PROPERTIES, K.CELL, K.PBC)
STORAGE_DTYPE = {
    K.POS: torch.float32, K.FRAC_POS: torch.float32, K.ATOMIC_NUMBERS: torch.uint8,
    K.FORMAL_CHARGES: torch.int8, K.FIXED: torch.bool, K.RESIDUE_TYPE: torch.int8,
    K.RESIDUE_INDEX: torch.int32, K.IS_BACKBONE: torch.bool, K.IS_PROTEIN: torch.bool,
    K.PROPERTIES: torch.float32, K.CELL: torch.float32, K.PBC: torch.bool, K.BOND_TYPE: torch.int8,
}
LOAD_DTYPE = {
    K.ATOMIC_NUMBERS: torch.long, K.FORMAL_CHARGES: torch.long, K.RESIDUE_TYPE: torch.long,
    K.RESIDUE_INDEX: torch.long, K.BOND_TYPE: torch.long,
}


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class PackedWriter:
    """Streams records into shards of ``shard_size`` structures under ``folder``.

    >>> import tempfile; from molgen.data.record import make_record
    >>> folder = Path(tempfile.mkdtemp())
    >>> writer = PackedWriter(folder)
    >>> writer.add(make_record([[0, 0, 0], [0, 0, 0.96]], [8, 1], name="OH"))
    >>> writer.close(meta={})
    >>> len(PackedStructures(folder))
    1
    """

    def __init__(self, folder: str | Path, shard_size: int = 50_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.shards: list[dict] = []
        self._buffer: list[Data] = []
        self.n_structures = 0

    def add(self, record: Data) -> None:
        self._buffer.append(record)
        self.n_structures += 1
        if len(self._buffer) >= self.shard_size:
            self._flush()

    def add_arrays(self, arrays: dict[str, torch.Tensor], names: list[str]) -> None:
        """Add an already flat block (same layout as a shard) in one go: the fast path for big sets."""
        self._flush()
        n = int(arrays["atom_ptr"].numel() - 1)
        self._write_shard(arrays, names)
        self.n_structures += n

    def _flush(self) -> None:
        if not self._buffer:
            return
        arrays, names = pack_records(self._buffer)
        self._buffer = []
        self._write_shard(arrays, names)

    def _write_shard(self, arrays: dict[str, torch.Tensor], names: list[str]) -> None:
        arrays = {k: (v.to(STORAGE_DTYPE[k]) if k in STORAGE_DTYPE else v).contiguous() for k, v in arrays.items()}
        arrays["names"] = list(names)
        file = f"shard_{len(self.shards):05d}.pt"
        atomic_save(arrays, self.folder / file)
        self.shards.append({"file": file, "n": int(arrays["atom_ptr"].numel() - 1)})

    def close(self, meta: dict) -> None:
        """Write the last shard and ``meta.json`` (last, so a folder with meta.json is complete)."""
        self._flush()
        content = {"format_version": FORMAT_VERSION, "n_structures": self.n_structures, "shards": self.shards}
        content.update(meta)
        atomic_write_text(json.dumps(content, indent=1), self.folder / "meta.json")


def pack_records(records: Iterable[Data]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Flat tensors of a list of records (the shard layout) and their names."""
    records = list(records)
    sizes = [int(r[K.POS].shape[0]) for r in records]
    atom_ptr = torch.zeros(len(records) + 1, dtype=torch.long)
    atom_ptr[1:] = torch.cumsum(torch.tensor(sizes, dtype=torch.long), 0)
    arrays: dict[str, torch.Tensor] = {"atom_ptr": atom_ptr}
    present = set().union(*(set(r.keys()) for r in records)) if records else set()
    for key in PER_ATOM:
        if key in present:
            arrays[key] = torch.cat([_field_or_default(r, key, n) for r, n in zip(records, sizes)])
    for key in PER_STRUCTURE:
        if key in present:
            arrays[key] = torch.cat([_structure_field_or_nan(r, key, records) for r in records])
    if K.BOND_INDEX in present:
        n_bonds = [int(r[K.BOND_INDEX].shape[1]) if K.BOND_INDEX in r else 0 for r in records]
        bond_ptr = torch.zeros(len(records) + 1, dtype=torch.long)
        bond_ptr[1:] = torch.cumsum(torch.tensor(n_bonds, dtype=torch.long), 0)
        arrays["bond_ptr"] = bond_ptr
        arrays[K.BOND_INDEX] = torch.cat(
            [r[K.BOND_INDEX].to(torch.int32) if K.BOND_INDEX in r else torch.zeros(2, 0, dtype=torch.int32) for r in records], 1
        )
        arrays[K.BOND_TYPE] = torch.cat(
            [r[K.BOND_TYPE] if K.BOND_TYPE in r else torch.zeros(0, dtype=torch.long) for r in records]
        )
    names = [str(r[K.NAME]) if K.NAME in r and r[K.NAME] is not None else "" for r in records]
    return arrays, names


def _field_or_default(record: Data, key: str, n_atoms: int) -> torch.Tensor:
    if key in record:
        return record[key]
    if key == K.POS or key == K.FRAC_POS:
        return torch.full((n_atoms, 3), float("nan"))
    if key in (K.RESIDUE_TYPE, K.RESIDUE_INDEX):
        return torch.full((n_atoms,), -1, dtype=torch.long)
    return torch.zeros(n_atoms, dtype=STORAGE_DTYPE.get(key, torch.long))


def _structure_field_or_nan(record: Data, key: str, records: list[Data]) -> torch.Tensor:
    if key in record:
        return record[key].float() if key != K.PBC else record[key]
    template = next(r[key] for r in records if key in r)
    if key == K.PBC:
        return torch.zeros_like(template, dtype=torch.bool)
    return torch.full_like(template, float("nan"), dtype=torch.float32)


class PackedStructures:
    """Random access to the records of a packed folder, memory-mapped.

    ``len(packed)`` structures; ``packed[i]`` is a :class:`Data` record with ``pos`` float32,
    ``z`` long and the other stored fields. ``packed.meta`` is the parsed ``meta.json``.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.folder} is not a packed dataset (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        self.shards = [
            torch.load(self.folder / s["file"], mmap=True, weights_only=True) for s in self.meta["shards"]
        ]
        counts = [s["n"] for s in self.meta["shards"]]
        self.shard_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.shard_start[-1])

    def locate(self, index: int) -> tuple[dict, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} structures")
        index = index % len(self)
        shard = int(np.searchsorted(self.shard_start, index, side="right") - 1)
        return self.shards[shard], index - int(self.shard_start[shard])

    def __getitem__(self, index: int) -> Data:
        from torch_geometric.data import Data

        shard, i = self.locate(int(index))
        start, stop = int(shard["atom_ptr"][i]), int(shard["atom_ptr"][i + 1])
        data = Data()
        for key in PER_ATOM:
            if key in shard:
                data[key] = _load(key, shard[key][start:stop])
        for key in PER_STRUCTURE:
            if key in shard and not torch.isnan(shard[key][i].float()).all():
                data[key] = _load(key, shard[key][i : i + 1])
        if K.BOND_INDEX in shard:
            b0, b1 = int(shard["bond_ptr"][i]), int(shard["bond_ptr"][i + 1])
            data[K.BOND_INDEX] = shard[K.BOND_INDEX][:, b0:b1].long()
            data[K.BOND_TYPE] = _load(K.BOND_TYPE, shard[K.BOND_TYPE][b0:b1])
        if K.FIXED not in data:
            data[K.FIXED] = torch.zeros(stop - start, dtype=torch.bool)
        data[K.NAME] = shard["names"][i]
        return data

    def sizes(self) -> np.ndarray:
        """Atoms per structure ``[n_structures]`` without materialising records."""
        return np.concatenate([np.diff(s["atom_ptr"].numpy()) for s in self.shards]).astype(np.int64)

    def iter_arrays(self):
        """Yield each shard's flat tensors (for statistics over the whole set)."""
        yield from self.shards


def _load(key: str, tensor: torch.Tensor) -> torch.Tensor:
    dtype = LOAD_DTYPE.get(key)
    return tensor.to(dtype) if dtype is not None else tensor.clone()
