"""Datasets: a source (named set, file or folder) processed once into a packed cache.

>>> dataset = open_dataset("qm9_sample")            # doctest: +SKIP
>>> len(dataset), dataset.statistics.elements       # doctest: +SKIP
(1000, [1, 6, 7, 8, 9])

Sources
-------
- ``qm9``: the 130,831 molecules of the ``qm9pack`` package (install ``molgen[qm9]``), the 12
  standard properties as ``y``, EDM's split (:func:`molgen.data.splits.edm_qm9_split`).
- ``qm9_sample``: the 1,000 bundled molecules of ``data/qm9/qm9_sample.csv.gz``.
- ``pdbbind:<folder>`` / ``crossdocked:<folder>``: protein-ligand complexes (ligand free, pocket
  fixed) in the PDBbind or CrossDocked layouts (:mod:`molgen.data.readers.proteins`).
- a file or folder in any format :func:`molgen.data.readers.read_structures` reads. Folders whose
  files are named ``train*`` / ``val*`` / ``test*`` keep those as splits; anything else gets a
  seeded 80/10/10 random split, by molecule when records name theirs (``info["smiles"]``: GEOM conformers).
- a packed dataset folder (one with ``meta.json`` and ``shard_*.pt``, as ``molgen data build SOURCE
  --output DIR`` writes): opened as it is, with no reader and no package of the original source; the
  way to train on a machine that has the processed data but not, say, ``qm9pack``.

The cache lives in ``$MOLGEN_CACHE`` (default ``~/.cache/molgen``), one folder per source and
fingerprint (file sizes and modification times, reader version), so a changed file is rebuilt.
Statistics of all structures (``statistics``) and of the training split (``train_statistics``,
which models and samplers use) are stored with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from molgen import keys as K
from molgen.data.packed import FORMAT_VERSION, PackedStructures, PackedWriter
from molgen.data.readers import ReadPolicy, read_structures
from molgen.data.readers.base import logical_suffix
from molgen.data.splits import edm_qm9_split, grouped_random_split, random_split, split_name_of_file
from molgen.data.statistics import DatasetStatistics, StatisticsAccumulator, _lattice_parameters
from molgen.errors import InputError, MolgenError

if TYPE_CHECKING:
    from torch_geometric.data import Data

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


def default_cache_dir() -> Path:
    return Path(os.environ.get("MOLGEN_CACHE", Path.home() / ".cache" / "molgen"))


def bundled_data_dir() -> Path:
    """The project's ``data/`` folder: ``$MOLGEN_DATA``, else ``./data``, else the checkout's."""
    for candidate in (os.environ.get("MOLGEN_DATA"), Path.cwd() / "data", REPO_DATA):
        if candidate and (Path(candidate) / "qm9").is_dir():
            return Path(candidate)
    return REPO_DATA


# --- sources ---------------------------------------------------------------------------------

@dataclass
class Source:
    """Where a dataset comes from and how to pack it.

    ``files`` are fingerprinted for the cache; ``build(writer, policy)`` streams records into the
    writer and returns (splits, property names, property units).
    """

    name: str
    files: list[Path]
    build: Callable[[PackedWriter, ReadPolicy], tuple[dict[str, np.ndarray], list[str], list[str]]]

    def fingerprint(self) -> str:
        digest = hashlib.sha1(f"{self.name}|v{FORMAT_VERSION}|{READER_VERSION}".encode())
        for file in self.files:
            stat = file.stat()
            digest.update(f"{file.resolve()}|{stat.st_size}|{int(stat.st_mtime)}".encode())
        return digest.hexdigest()[:12]


READER_VERSION = 2  # bump when a reader or a split rule changes what it produces, to invalidate caches


def _qm9_source() -> Source:
    from molgen.data.readers import qm9

    files = qm9.qm9pack_files()

    def build(writer: PackedWriter, policy: ReadPolicy):
        arrays = qm9.load_qm9pack_arrays()
        sizes = torch.as_tensor(np.asarray(arrays.sizes, dtype=np.int64))
        atom_ptr = torch.zeros(len(sizes) + 1, dtype=torch.long)
        atom_ptr[1:] = torch.cumsum(sizes, 0)
        n_atoms = int(atom_ptr[-1])
        flat = {
            "atom_ptr": atom_ptr,
            K.POS: torch.as_tensor(np.asarray(arrays.positions, dtype=np.float32)),
            K.ATOMIC_NUMBERS: torch.as_tensor(np.asarray(arrays.atomic_numbers, dtype=np.int64)),
            K.FORMAL_CHARGES: torch.zeros(n_atoms, dtype=torch.int8),  # QM9 molecules are neutral
            K.PROPERTIES: torch.as_tensor(np.asarray(arrays.properties, dtype=np.float32)),
        }
        names = [f"gdb_{i}" for i in arrays.gdb_index]
        writer.add_arrays(flat, names)
        return edm_qm9_split(len(sizes)), list(qm9.QM9_PROPERTY_NAMES), list(qm9.QM9_PROPERTY_UNITS)

    return Source("qm9", files, build)


def _file_source(path: Path, name: str | None = None, seed: int = 0) -> Source:
    """A file, or a folder (split by file names when they say train/val/test)."""
    if not path.exists():
        raise InputError(path, "no such file or folder, and not a known dataset name "
                         f"({', '.join(sorted(NAMED_SOURCES))})")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = [path]

    def build(writer: PackedWriter, policy: ReadPolicy):
        from molgen.data.readers import READERS

        readable = [f for f in files if logical_suffix(f) in READERS]
        if not readable:
            raise InputError(path, "no readable structure files")
        split_of_file = {f: split_name_of_file(f.name) for f in readable}
        use_file_splits = path.is_dir() and all(split_of_file.values())
        indices: dict[str, list[int]] = {"train": [], "valid": [], "test": []}
        groups: list[str | None] = []  # the molecule of each structure, when it names one (GEOM conformers)
        property_names: list[str] = []
        for file in readable:
            if not property_names:
                property_names = _declared_property_names(file)
            for record in _progress(read_structures(file, policy), f"reading {file.name}"):
                if use_file_splits:
                    indices[split_of_file[file]].append(writer.n_structures)
                info = record[K.INFO] if K.INFO in record else {}
                groups.append((info.get("smiles") or None) if isinstance(info, dict) else None)
                if K.INFO in record and "property_names" in record[K.INFO] and not property_names:
                    property_names = list(record[K.INFO]["property_names"])
                writer.add(record)
        if use_file_splits:
            splits = {k: np.asarray(v, dtype=np.int64) for k, v in indices.items()}
        elif any(g is not None for g in groups):
            splits = grouped_random_split(groups, seed=seed)
        else:
            splits = random_split(writer.n_structures, seed=seed)
        return splits, property_names, [""] * len(property_names)

    return Source(name or str(path), files, build)


def _declared_property_names(file: Path) -> list[str]:
    """Names of the ``y`` columns a file declares up front (CDVAE CSV property columns)."""
    if logical_suffix(file) == ".csv":
        from molgen.data.readers.tables import csv_columns

        if "cif" in csv_columns(file):
            from molgen.data.readers.crystals import cdvae_property_columns

            return list(cdvae_property_columns(file))
    return []


def _qm9_sample_source() -> Source:
    from molgen.data.readers import qm9

    path = bundled_data_dir() / "qm9" / "qm9_sample.csv.gz"
    source = _file_source(path, "qm9_sample")
    inner = source.build

    def build(writer, policy):
        splits, _, _ = inner(writer, policy)
        return splits, list(qm9.QM9_PROPERTY_NAMES), list(qm9.QM9_PROPERTY_UNITS)

    source.build = build
    return source


def _complex_source(scheme: str, root: Path, seed: int = 0) -> Source:
    """Protein-ligand complexes: ``pdbbind:<refined-set folder>`` or ``crossdocked:<pocket10 folder>``.

    CrossDocked keeps the splits of ``split_by_name.pt`` (looked for in the folder and beside it);
    when it has no validation split, a seeded 1 % of train is held out. PDBbind gets a seeded
    80/10/10 split by complex.
    """
    from molgen.data.readers import proteins

    if not root.is_dir():
        raise InputError(root, f"{scheme} dataset folder not found")
    split_file = next((p for p in (root / "split_by_name.pt", root.parent / "split_by_name.pt") if p.exists()), None)
    index_file = root / "index.pkl"
    files = [f for f in (split_file, index_file) if f is not None and f.exists()] or [root]

    def build(writer: PackedWriter, policy: ReadPolicy):
        if scheme == "pdbbind":
            for record in _progress(proteins.iter_pdbbind(root, policy=policy), "reading PDBbind"):
                writer.add(record)
            return random_split(writer.n_structures, seed=seed), [], []
        if split_file is None:
            for record in _progress(proteins.iter_crossdocked(root, policy=policy), "reading CrossDocked"):
                writer.add(record)
            return random_split(writer.n_structures, seed=seed), [], []
        indices: dict[str, list[int]] = {}
        for split in proteins.load_crossdocked_split(split_file):
            name = {"val": "valid"}.get(split, split)
            indices[name] = []
            records = proteins.iter_crossdocked(root, split_file=split_file, split=split, policy=policy)
            for record in _progress(records, f"reading CrossDocked {split}"):
                indices[name].append(writer.n_structures)
                writer.add(record)
        splits = {k: np.asarray(v, dtype=np.int64) for k, v in indices.items()}
        if "valid" not in splits and len(splits.get("train", [])):
            train = np.random.default_rng(seed).permutation(splits["train"])
            n_valid = max(1, len(train) // 100)
            splits["valid"], splits["train"] = np.sort(train[:n_valid]), np.sort(train[n_valid:])
        return splits, [], []

    return Source(f"{scheme}_{root.name}", [Path(f) for f in files], build)


NAMED_SOURCES: dict[str, Callable[[], Source]] = {
    "qm9": _qm9_source,
    "qm9_sample": _qm9_sample_source,
}


def resolve_source(source: str | Path) -> Source:
    """A :class:`Source` for a dataset name or a path."""
    if str(source) in NAMED_SOURCES:
        return NAMED_SOURCES[str(source)]()
    scheme, _, rest = str(source).partition(":")
    if scheme in COMPLEX_SCHEMES and rest:
        return _complex_source(scheme, Path(rest))
    return _file_source(Path(source))


COMPLEX_SCHEMES = ("pdbbind", "crossdocked")


# --- the dataset -------------------------------------------------------------------------------

class StructureDataset(Dataset):
    """A packed dataset: ``dataset[i]`` is a record (``pos`` float32 in Å, ``z`` long, ...).

    Attributes
    ----------
    splits : split name -> indices ``[n_split]``.
    statistics : over all structures; ``train_statistics`` over the training split.
    skipped : skip report of the build (count and reasons), empty when nothing was skipped.
    """

    def __init__(self, folder: str | Path):
        self.packed = PackedStructures(folder)
        meta = self.packed.meta
        self.name = meta.get("source", str(folder))
        self.folder = Path(folder)
        self.splits = {k: np.asarray(v, dtype=np.int64) for k, v in meta["splits"].items()}
        self.statistics = DatasetStatistics.from_dict(meta["statistics"])
        self.train_statistics = DatasetStatistics.from_dict(meta["train_statistics"])
        self.skipped = meta.get("skipped", {"count": 0})

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, index: int) -> Data:
        return self.packed[int(index)]

    def split(self, name: str) -> "SplitView":
        aliases = {"val": "valid", "validation": "valid"}
        name = aliases.get(name, name)
        if name not in self.splits:
            raise MolgenError(f"dataset {self.name} has no split '{name}' (has {', '.join(self.splits)})")
        return SplitView(self, self.splits[name])


class SplitView(Dataset):
    """The structures of one split, indexable from 0."""

    def __init__(self, dataset: StructureDataset, indices: np.ndarray):
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Data:
        return self.dataset[int(self.indices[index])]


def open_dataset(
    source: str | Path,
    cache_dir: str | Path | None = None,
    on_error: str = "raise",
    rebuild: bool = False,
    verbose: bool = True,
) -> StructureDataset:
    """Open a dataset, building its packed cache on first use.

    Parameters
    ----------
    source : dataset name (``qm9``, ``qm9_sample``) or file / folder.
    cache_dir : where packed datasets live; default ``$MOLGEN_CACHE`` or ``~/.cache/molgen``.
    on_error : ``"raise"`` stops at the first bad record; ``"skip"`` skips bad records and reports
        how many and why (printed, and stored in the dataset's ``skipped``).
    rebuild : build again even when a cache exists.
    """
    if is_packed_folder(source):
        return StructureDataset(source)
    resolved = resolve_source(source)
    folder = Path(cache_dir or default_cache_dir()) / "datasets" / f"{_slug(resolved.name)}-{resolved.fingerprint()}"
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "meta.json").exists():
        build_dataset(resolved, folder, on_error=on_error, verbose=verbose)
    return StructureDataset(folder)


def is_packed_folder(source: str | Path) -> bool:
    """Whether ``source`` is a folder holding a packed dataset (its ``meta.json`` and shards)."""
    folder = Path(source)
    return folder.is_dir() and (folder / "meta.json").is_file() and any(folder.glob("shard_*.pt"))


def export_dataset(dataset: StructureDataset, target: str | Path) -> Path:
    """Copy a packed dataset to ``target`` (a new or empty folder); returns the folder.

    The copy opens with :func:`open_dataset` anywhere, with the same records, splits and statistics.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise MolgenError(f"{target}: folder exists and is not empty; choose a new folder")
    tmp = target.with_name(target.name + ".copying")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(dataset.folder, tmp)
    if target.exists():
        target.rmdir()
    tmp.rename(target)
    return target


def build_dataset(source: Source, folder: Path, on_error: str = "raise", verbose: bool = True) -> None:
    """Pack ``source`` into ``folder`` (written to a temporary folder, then renamed)."""
    if on_error not in ("raise", "skip"):
        raise MolgenError(f"on_error must be 'raise' or 'skip', got '{on_error}'")
    tmp = folder.with_name(folder.name + ".building")
    if tmp.exists():
        shutil.rmtree(tmp)
    start = time.perf_counter()
    policy = ReadPolicy(on_error)  # type: ignore[arg-type]
    writer = PackedWriter(tmp)
    splits, property_names, property_units = source.build(writer, policy)
    writer.close(meta={"source": source.name, "splits": {k: v.tolist() for k, v in splits.items()}})
    packed = PackedStructures(tmp)
    all_stats = compute_statistics(packed, None, property_names, property_units)
    train_stats = compute_statistics(packed, splits.get("train"), property_names, property_units)
    skipped = {"count": len(policy.skipped), "reasons": dict(policy.skipped.reasons()),
               "examples": [str(e) for e in policy.skipped.entries[:20]]}
    meta = dict(packed.meta)
    meta.update(statistics=all_stats.to_dict(), train_statistics=train_stats.to_dict(), skipped=skipped,
                build_seconds=round(time.perf_counter() - start, 2))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    del packed
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    if verbose and len(policy.skipped):
        print(f"{source.name}: {policy.skipped.summary()}", file=sys.stderr)


def compute_statistics(
    packed: PackedStructures,
    indices: np.ndarray | None,
    property_names: Sequence[str] = (),
    property_units: Sequence[str] = (),
) -> DatasetStatistics:
    """Statistics of the structures ``indices`` (all when None), straight from the flat tensors."""
    acc = StatisticsAccumulator(property_names, property_units)
    offset = 0
    for shard in packed.iter_arrays():
        ptr = shard["atom_ptr"].numpy()
        n = len(ptr) - 1
        local = np.arange(n) if indices is None else indices[(indices >= offset) & (indices < offset + n)] - offset
        offset += n
        if len(local) == 0:
            continue
        sizes = ptr[local + 1] - ptr[local]
        atom_mask = np.zeros(ptr[-1], dtype=bool)
        starts = np.repeat(ptr[local], sizes) + _ranges(sizes)
        atom_mask[starts] = True
        z = shard[K.ATOMIC_NUMBERS].numpy()[atom_mask]
        props = shard[K.PROPERTIES].numpy()[local] if K.PROPERTIES in shard else None
        if props is not None and np.isnan(props).all():
            props = None
        acc.add_arrays(z, sizes, props)
        if K.FORMAL_CHARGES in shard:
            acc.charges.update(_counts(shard[K.FORMAL_CHARGES].numpy()[atom_mask]))
        if K.CELL in shard:
            cells = shard[K.CELL].numpy()[local].astype(np.float64)
            for cell, size in zip(cells, sizes):
                if np.isfinite(cell).all():
                    acc._lattice_rows.append(_lattice_parameters(cell, int(size)))
    return acc.finish()


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s)`` for each size: [2, 3] -> [0, 1, 0, 1, 2]."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total) - starts


def _counts(values: np.ndarray) -> dict[int, int]:
    unique, counts = np.unique(values.astype(np.int64), return_counts=True)
    return {int(u): int(c) for u, c in zip(unique, counts)}


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).name)
    return keep[:60] or "dataset"


def _progress(iterable, description: str):
    """A tqdm progress bar on a terminal, plain iteration otherwise."""
    if not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, unit=" structures", leave=False)
