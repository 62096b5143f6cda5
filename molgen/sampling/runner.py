"""A sampling run written batch by batch: crash-safe, resumable, deterministic, distributable.

Layout of a run writing ``OUT`` (e.g. ``samples.sdf``)::

    OUT.parts/run.json          the settings of the run (checked on --resume)
    OUT.parts/batch-000000.sdf  one file per finished batch, written atomically (temporary name + rename)
    ...
    OUT                         all batches in order, written when every batch exists; then OUT.parts is removed

- A crash loses at most the batch being generated: finished batches are complete files.
- ``resume=True`` generates only the missing batches, so the run finishes with exactly ``n`` structures and no
  duplicates; the settings must match the interrupted run's (``run.json``).
- Batch ``i`` covers structures ``i * batch_size .. min((i + 1) * batch_size, n) - 1``; its random numbers come
  from generators seeded by :func:`batch_seed` ``(seed, i)`` only (sizes on a CPU generator, the reverse process on
  one of the model's device). The same seed therefore gives the same output whether the run was interrupted
  and resumed or not, and whatever the number of processes (:mod:`molgen.sampling.distributed`).
- SDF output carries bonds perceived with EDM's distance tables (:mod:`molgen.validation.bonds`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from molgen import keys as K
from molgen.errors import ConfigError
from molgen.sampling.distributed import DistContext, all_ok, assigned_batches, barrier
from molgen.sampling.inpainting import FixedAtoms
from molgen.sampling.model import SamplingModel, generate_batch
from molgen.sampling.samplers import Sampler
from molgen.sampling.sizes import SizeDistribution

__all__ = ["batch_seed", "batch_plan", "SampleRun", "RunResult", "perceive_bonds", "iter_batches"]

MANIFEST = "run.json"


def batch_seed(seed: int, index: int) -> int:
    """A 63-bit seed for batch ``index`` of a run with ``seed`` (NumPy's SeedSequence mixing)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def batch_plan(n: int, batch_size: int) -> list[tuple[int, int, int]]:
    """``(index, first structure, count)`` of every batch."""
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    return [(i, start, min(batch_size, n - start)) for i, start in enumerate(range(0, n, batch_size))]


def batch_generators(seed: int, index: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """``(cpu generator for sizes, device generator for the reverse process)`` of one batch."""
    base = batch_seed(seed, index)
    sizes = torch.Generator().manual_seed(base)
    process = torch.Generator(device=device).manual_seed(base ^ 0x5DEECE66D)
    return sizes, process


def perceive_bonds(records: Sequence[Data]) -> bool:
    """Add EDM-perceived bonds (``bond_index``, ``bond_type``) to molecule records, in place.

    Returns False (records unchanged) when :mod:`molgen.validation` is not installed.
    """
    try:
        from molgen.validation.bonds import edm_bonds_batch
    except ImportError:  # pragma: no cover - validation is part of the package
        return False
    bonds, _ = edm_bonds_batch([r[K.ATOMIC_NUMBERS].numpy() for r in records], [r[K.POS].numpy() for r in records])
    for record, (pairs, orders) in zip(records, bonds):
        record[K.BOND_INDEX] = torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2).t().contiguous()
        record[K.BOND_TYPE] = torch.as_tensor(orders, dtype=torch.long)
    return True


def iter_batches(model: SamplingModel, n: int, batch_size: int, seed: int, sampler: Sampler,
                 sizes: SizeDistribution, *, condition: dict[str, float] | None = None, guidance=None,
                 fixed_atoms: FixedAtoms | None = None, count: str = "total", inpaint: str = "context",
                 indices: Sequence[int] | None = None) -> Iterator[tuple[int, list[Data]]]:
    """``(batch index, records)`` of the run's batches (all, or ``indices``), each from its own seed."""
    plan = batch_plan(n, batch_size)
    device = model.device
    for index in (range(len(plan)) if indices is None else indices):
        _, start, size = plan[index]
        size_gen, gen = batch_generators(seed, index, device)
        drawn = sizes.sample(size, size_gen)
        targets = model.condition_tensor(condition, size)
        records = generate_batch(model, drawn, sampler, gen, condition=targets, guidance=guidance,
                                 fixed_atoms=fixed_atoms, count=count, first_index=start, inpaint=inpaint)
        yield index, records


@dataclass
class RunResult:
    """What a run did on this rank."""

    output: Path
    n_total: int
    n_generated: int  # structures generated by this process in this session
    seconds: float
    merged: bool
    skipped_batches: int = 0
    bonds: bool = True

    @property
    def structures_per_second(self) -> float:
        return self.n_generated / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class SampleRun:
    """A batch-by-batch sampling run (see the module docstring).

    Parameters
    ----------
    model, sampler, sizes : what to sample with.
    output : the final file (``.sdf``, ``.xyz``, ``.extxyz``, optionally ``.gz``).
    n, batch_size, seed : how many, in which batches, from which seed.
    condition : property targets ``{"gap": 0.25}``; guidance : a :class:`~molgen.sampling.guidance.Guidance`.
    fixed_atoms, count, inpaint : inpainting context and mode (see :mod:`molgen.sampling.inpainting`).
    resume : finish an interrupted run; overwrite : replace an existing output.
    settings : extra values recorded in ``run.json`` and compared on resume (model id, options).
    dist : this process's place in a distributed run.
    progress : show a tqdm bar (rank 0 only).
    on_batch : called after each batch is written with ``(index, records)`` (tests simulate crashes with it).
    """

    model: SamplingModel
    sampler: Sampler
    sizes: SizeDistribution
    output: Path
    n: int
    batch_size: int = 100
    seed: int = 0
    condition: dict[str, float] | None = None
    guidance: Any = None
    fixed_atoms: FixedAtoms | None = None
    count: str = "total"
    inpaint: str = "context"
    resume: bool = False
    overwrite: bool = False
    settings: dict = field(default_factory=dict)
    dist: DistContext = field(default_factory=DistContext)
    progress: bool = True
    on_batch: Callable[[int, list[Data]], None] | None = None

    def __post_init__(self):
        from molgen.export.writers import format_of

        self.output = Path(self.output)
        self.format = format_of(self.output)  # checks the extension early
        self.parts = self.output.with_name(self.output.name + ".parts")
        base = self.output.name[:-3] if self.output.name.lower().endswith(".gz") else self.output.name
        self.part_suffix = Path(base).suffix
        self.plan = batch_plan(self.n, self.batch_size)

    # --- bookkeeping ---------------------------------------------------------------------
    def manifest(self) -> dict:
        return {"n": self.n, "batch_size": self.batch_size, "seed": self.seed, "sampler": repr(self.sampler),
                "sizes": repr(self.sizes), "condition": self.condition, "count": self.count,
                "inpaint": self.inpaint if self.fixed_atoms is not None else None,
                "fragment": None if self.fixed_atoms is None else {
                    "name": self.fixed_atoms.name, "z": self.fixed_atoms.z.tolist(),
                    "pos": self.fixed_atoms.pos.tolist()},
                **self.settings}

    def part_path(self, index: int) -> Path:
        return self.parts / f"batch-{index:06d}{self.part_suffix}"

    def done_batches(self) -> set[int]:
        if not self.parts.is_dir():
            return set()
        done = set()
        for path in self.parts.glob(f"batch-*{self.part_suffix}"):
            try:
                done.add(int(path.name[6:12]))
            except ValueError:
                continue
        return {i for i in done if i < len(self.plan)}

    def _prepare(self) -> bool:
        """Check / create the parts folder on rank 0; False when the output is already complete."""
        if self.parts.is_dir():
            if not self.resume:
                raise ConfigError(f"{self.parts} holds an unfinished run: add --resume to finish it, or delete it")
            manifest_path = self.parts / MANIFEST
            if manifest_path.is_file():
                old = json.loads(manifest_path.read_text())
                new = json.loads(json.dumps(self.manifest()))
                differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                if differ:
                    raise ConfigError(f"--resume: the settings differ from the interrupted run's in {', '.join(differ)}"
                                      f" (see {manifest_path})")
            return True
        if self.output.exists():
            if self.resume:
                return False  # nothing left to do
            if not self.overwrite:
                raise ConfigError(f"{self.output} exists: choose another -o, or pass --overwrite")
        self.parts.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.parts / MANIFEST, json.dumps(self.manifest(), indent=1))
        return True

    # --- the run -------------------------------------------------------------------------
    def run(self) -> RunResult:
        from molgen.export.writers import write_structures

        ok, message, active = True, "", True
        if self.dist.is_main:
            try:
                active = self._prepare()
            except Exception as exc:  # tell the other ranks before raising
                ok, message = False, str(exc)
        if not all_ok(self.dist, ok):
            barrier(self.dist)
            raise ConfigError(message or "rank 0 could not prepare the run")
        if not all_ok(self.dist, active):  # rank 0 found the output complete
            return RunResult(self.output, self.n, 0, 0.0, merged=True)
        barrier(self.dist)

        done = self.done_batches()
        mine = [i for i in assigned_batches(len(self.plan), self.dist.rank, self.dist.world_size) if i not in done]
        n_done = sum(self.plan[i][2] for i in done)
        bar = self._progress_bar(n_done)
        names = [f"target_{p}" for p in self.model.condition_names] if self.condition else []
        bonds_ok = True
        generated, start = 0, time.perf_counter()
        try:
            for index, records in iter_batches(self.model, self.n, self.batch_size, self.seed, self.sampler,
                                               self.sizes, condition=self.condition, guidance=self.guidance,
                                               fixed_atoms=self.fixed_atoms, count=self.count,
                                               inpaint=self.inpaint, indices=mine):
                if self.format == "sdf":
                    bonds_ok = perceive_bonds(records) and bonds_ok
                write_structures(records, self.part_path(index), property_names=names)
                generated += len(records)
                if bar is not None:
                    bar.update(len(records) * self.dist.world_size)
                    elapsed = time.perf_counter() - start
                    bar.set_postfix_str(f"{generated / elapsed:.2f} structures/s on this rank")
                if self.on_batch is not None:
                    self.on_batch(index, records)
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        barrier(self.dist)
        merged = False
        if self.dist.is_main:
            merged = self.merge()
        barrier(self.dist)
        return RunResult(self.output, self.n, generated, seconds, merged=merged, skipped_batches=len(done),
                         bonds=bonds_ok)

    def _progress_bar(self, initial: int):
        if not (self.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.n, initial=initial, unit=" structures", desc=f"sampling {self.output.name}",
                    file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def merge(self) -> bool:
        """Concatenate the batch files in order into the output (rank 0); False if some are missing."""
        missing = [i for i in range(len(self.plan)) if not self.part_path(i).is_file()]
        if missing:
            return False
        chunks = [self.part_path(i).read_bytes() for i in range(len(self.plan))]
        payload = b"".join(chunks)
        if self.output.name.lower().endswith(".gz"):
            import gzip

            payload = gzip.compress(payload)
        _atomic_write_bytes(self.output, payload)
        shutil.rmtree(self.parts)
        return True


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, text.encode())

