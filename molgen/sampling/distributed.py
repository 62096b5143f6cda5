"""Generation across processes, GPUs and nodes with ``torch.distributed``.

Work is split by batch: batch ``i`` of a run belongs to rank ``i % world_size``. Each batch's random numbers
derive from ``(seed, i)`` only (:func:`molgen.sampling.runner.batch_seed`), so the merged output is the same for
any number of processes. Each rank writes its batches as its own shard files in the run's parts folder; when
every rank is done (a barrier), rank 0 merges them in batch order into the output file. The parts folder must
be visible to rank 0 (one machine, or a shared filesystem across nodes).

Launch:

- one machine, N processes: ``molgen sample ... --devices N`` (spawned here; GPUs when present, one per
  process, else CPU processes with the gloo backend);
- several machines: ``torchrun --nnodes M --nproc-per-node N -m molgen.cli.main sample ...`` or ``srun``:
  the environment (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``, or SLURM's) is read here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

__all__ = ["DistContext", "init_distributed", "shutdown", "barrier", "assigned_batches", "spawn", "free_port",
           "device_for"]


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # whether init_distributed created the process group (and shutdown destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return None


def init_distributed(backend: str | None = None) -> DistContext:
    """Join the process group described by the environment (torchrun or SLURM); a single process otherwise.

    An already initialised group (Lightning, a test harness) is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        local = _env_int("LOCAL_RANK", "SLURM_LOCALID") or 0
        return DistContext(dist.get_rank(), dist.get_world_size(), local, owns_group=False)
    world = _env_int("WORLD_SIZE") or 1
    if world == 1 and (_env_int("SLURM_NTASKS") or 1) > 1 and "MASTER_ADDR" in os.environ:
        world = _env_int("SLURM_NTASKS") or 1
        os.environ.setdefault("RANK", os.environ.get("SLURM_PROCID", "0"))
        os.environ.setdefault("WORLD_SIZE", str(world))
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29511")
    if world <= 1:
        return DistContext()
    rank = _env_int("RANK", "SLURM_PROCID") or 0
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID") or 0
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local, owns_group=True)


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.barrier()


def all_ok(ctx: DistContext, ok: bool) -> bool:
    """True when ``ok`` holds on every rank (so all ranks take the same branch after a failure)."""
    if ctx.world_size == 1 or not dist.is_initialized():
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.long)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag)
    return int(flag.item()) == 0


def assigned_batches(n_batches: int, rank: int, world_size: int) -> list[int]:
    """The batch indices of one rank (round robin)."""
    return list(range(rank, n_batches, world_size))


def device_for(ctx: DistContext, requested: str | None = None) -> torch.device:
    """``requested`` if given, else this rank's GPU when there are GPUs, else CPU."""
    if requested:
        if requested == "cuda" and ctx.world_size > 1:
            return torch.device(f"cuda:{ctx.local_rank}")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{ctx.local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawned(local_rank: int, fn: Callable[..., Any], nprocs: int, port: int, args: tuple) -> None:
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(nprocs),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    if not torch.cuda.is_available():
        # share the machine's cores between the processes instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // nprocs))
    fn(*args)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple = ()) -> None:
    """Run ``fn(*args)`` in ``nprocs`` local processes that form one process group (via the environment)."""
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(fn, nprocs, free_port(), args), nprocs=nprocs, join=True)
