"""Reference sets for novelty and distribution distances, computed once and cached on disk.

A reference is named by ``--reference``: ``qm9`` (EDM's QM9 training split of qm9pack: 100,000 molecules,
:func:`molgen.data.readers.qm9.edm_split_indices`), ``qm9-all`` (all 130,831), or a structure file / folder
(any format :func:`molgen.data.readers.read_structures` reads). Its SMILES go through the protocol's own
pipeline (EDM: whole-molecule SMILES of each sanitizable structure) and its histograms through
:func:`molgen.validation.distributions.molecule_stats`; both are cached as gzip JSON under the cache folder
(``--cache-dir``, else ``$MOLGEN_CACHE_DIR``, else ``~/.cache/molgen``), keyed by the protocol and the
reference's identity (path, size and modification time of files), so editing the reference invalidates it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from molgen.validation.distributions import DistributionStats, molecule_stats
from molgen.validation.protocols import Protocol

CACHE_VERSION = 1
DATASETS = ("qm9", "qm9-all")


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Folder of cached references (created on demand)."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("MOLGEN_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "molgen"


@dataclass
class MoleculeReference:
    """SMILES set and histogram summary of a reference set of molecules."""

    name: str
    smiles: frozenset[str]
    stats: DistributionStats
    n: int


def _identity(spec: str) -> str:
    if spec in DATASETS:
        try:
            from importlib.metadata import version

            return f"{spec}:qm9pack-{version('qm9pack')}"
        except Exception:
            return spec
    path = Path(spec).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = [f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files if p.exists()]
    return "|".join(parts) or str(path)


def reference_molecules(spec: str):
    """(molecules, failures) of a reference spec (see the module notes)."""
    from molgen.validation.molecule_metrics import Molecule

    if spec in DATASETS:
        import numpy as np

        from molgen.data.readers.qm9 import edm_split_indices, load_qm9pack_arrays

        arrays = load_qm9pack_arrays()
        offsets = arrays.offsets
        rows = np.sort(edm_split_indices(len(arrays))["train"]) if spec == "qm9" else np.arange(len(arrays))
        molecules = [
            Molecule(arrays.atomic_numbers[offsets[i]:offsets[i + 1]].astype(np.int64),
                     arrays.positions[offsets[i]:offsets[i + 1]], name=f"qm9:{int(arrays.gdb_index[i])}")
            for i in rows
        ]
        return molecules, []
    from molgen.validation.inputs import read_molecules

    return read_molecules([spec])


def load_molecule_reference(spec: str, protocol: Protocol, *, cache: str | os.PathLike | None = None,
                            workers: int | None = None, use_cache: bool = True) -> MoleculeReference:
    """The reference named ``spec`` under ``protocol``, from the cache when it is there."""
    from molgen.validation.molecule_metrics import perceive, validity_items
    from molgen.validation.rdkit_validity import validate_many

    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, protocol.name, protocol.bonds, _identity(spec)]).encode()
    ).hexdigest()[:20]
    path = cache_dir(cache) / "validation" / f"reference-{key}.json.gz"
    if use_cache and path.exists():
        try:
            with gzip.open(path, "rt") as handle:
                data = json.load(handle)
            return MoleculeReference(spec, frozenset(data["smiles"]), DistributionStats.from_dict(data["stats"]), data["n"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed
    molecules, _ = reference_molecules(spec)
    perceived = perceive(molecules, protocol, workers=workers)
    results = validate_many(validity_items(molecules, perceived, protocol), workers=workers)
    # EDM's training-set rule: the whole molecule's SMILES of each structure that sanitizes
    smiles = {r.smiles_whole for r in results if r.smiles_whole is not None}
    stats = molecule_stats([m.z for m in molecules], [m.pos for m in molecules], perceived.bonds)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt") as handle:
            json.dump({"spec": spec, "protocol": protocol.name, "n": len(molecules), "smiles": sorted(smiles),
                       "stats": stats.to_dict()}, handle)
        tmp.replace(path)
    return MoleculeReference(spec, frozenset(smiles), stats, len(molecules))


def stats_of(molecules: Sequence, protocol: Protocol, bonds=None) -> DistributionStats:
    """Histogram summary of molecules, bonds perceived under ``protocol`` unless given."""
    if bonds is None:
        from molgen.validation.molecule_metrics import perceive

        bonds = perceive(molecules, protocol).bonds
    return molecule_stats([m.z for m in molecules], [m.pos for m in molecules], bonds)
