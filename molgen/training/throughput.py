"""End-to-end training throughput: molecules per second through the Lightning module (data loading, forward,
backward, clipping, NaN guard, AdamW, EMA, logging), for the network's size presets.

    python -m molgen.training.throughput --preset small default --steps 12 --warmup 3 --batch-size 64

Reports, per preset: parameters, median and mean seconds per optimizer step after ``warmup`` steps, molecules/s.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

__all__ = ["StepTimer", "measure"]


class StepTimer(L.Callback):
    """Wall time of each training batch (start of the batch to its end, optimizer step and EMA included)."""

    def __init__(self):
        self.times: list[float] = []
        self.sizes: list[int] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter() - self._start)
        self.sizes.append(int(batch.num_graphs))


def measure(preset: str, steps: int, warmup: int, batch_size: int, source: str, overrides=(), output_dir=None) -> dict:
    import tempfile

    from molgen.model.denoiser import count_parameters
    from molgen.training.config import load_config
    from molgen.training.trainer import train

    out = output_dir or tempfile.mkdtemp(prefix="molgen-throughput-")
    cfg = load_config(None, [
        f"model.preset={preset}", f"data.source={source}", f"data.batch_size={batch_size}", f"output_dir={out}",
        "trainer.accelerator=cpu", "trainer.max_epochs=-1", f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=10",
        "logging.tensorboard=false", f"checkpoint.every_n_steps={10 * steps}", *overrides,
    ])
    timer = StepTimer()
    result = train(cfg, extra_callbacks=[timer])
    times = timer.times[warmup:]
    sizes = timer.sizes[warmup:]
    return {
        "preset": preset,
        "parameters": count_parameters(result.module.denoiser),
        "steps_timed": len(times),
        "median_s_per_step": statistics.median(times),
        "mean_s_per_step": sum(times) / len(times),
        "molecules_per_s": sum(sizes) / sum(times),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", nargs="+", default=["small", "default"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--source", default="qm9_sample")
    parser.add_argument("overrides", nargs="*", help="extra config overrides (key=value)")
    args = parser.parse_args(argv)
    print("| preset | parameters | s/step (median) | s/step (mean) | molecules/s |")
    print("|---|---:|---:|---:|---:|")
    for preset in args.preset:
        r = measure(preset, args.steps, args.warmup, args.batch_size, args.source, args.overrides)
        print(f"| {r['preset']} | {r['parameters']:,} | {r['median_s_per_step']:.3f} | {r['mean_s_per_step']:.3f} "
              f"| {r['molecules_per_s']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
