"""Training throughput of the denoiser: QM9 molecules per second, forward + backward + AdamW step.

Batches of real QM9 molecules (``data/qm9/qm9_sample.csv.gz``; synthetic molecules of QM9
sizes when it is absent), fully connected graphs, EDM-style inputs (one-hot H, C, N, O, F
plus the charge z / 9), noisy positions at a random time per molecule, a loss on the vector
and the scalar outputs. Prints a markdown table row per preset.

Usage::

    python benchmarks/bench_model.py                        # all presets, float32
    python benchmarks/bench_model.py --presets small --bf16 # autocast to bfloat16
    python benchmarks/bench_model.py --sampling             # also time one no-grad denoiser call
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from molgen.model import PRESETS, DenoiserInput, build_denoiser, count_parameters

REPO = Path(__file__).resolve().parents[1]
QM9_SAMPLE = REPO / "data" / "qm9" / "qm9_sample.csv.gz"
TYPES = [1, 6, 7, 8, 9]  # H C N O F


def qm9_molecules(n: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` (positions, atomic numbers) pairs: real QM9 molecules if available, else synthetic."""
    if QM9_SAMPLE.exists():
        from molgen.data.readers import read_all

        records = read_all(QM9_SAMPLE)
        order = torch.randperm(len(records), generator=generator)[:n]
        return [(records[i].pos.float(), records[i].z) for i in order.tolist()]
    out = []
    for _ in range(n):  # sizes close to QM9's (mean 18, 3..29)
        k = int(torch.clamp(torch.normal(18.0, 3.0, (1,), generator=generator), 3, 29))
        z = torch.tensor(TYPES)[torch.randint(0, 5, (k,), generator=generator)]
        out.append((torch.randn(k, 3, generator=generator) * 1.5, z))
    return out


def make_batch(mols, generator: torch.Generator) -> tuple[DenoiserInput, torch.Tensor, torch.Tensor]:
    pos = torch.cat([p - p.mean(0) for p, _ in mols])
    z = torch.cat([z for _, z in mols])
    batch = torch.cat([torch.full((len(p),), i, dtype=torch.long) for i, (p, _) in enumerate(mols)])
    types = (z[:, None] == torch.tensor(TYPES)).float()
    x = torch.cat([types, z[:, None].float() / 9.0], dim=-1)
    t = torch.rand(len(mols), generator=generator)
    alpha = torch.cos(0.5 * torch.pi * t)[batch, None]
    sigma = torch.sin(0.5 * torch.pi * t)[batch, None]
    eps = torch.randn(pos.shape, generator=generator)
    noisy = alpha * pos + sigma * eps
    inputs = DenoiserInput(noisy, alpha * x + sigma * torch.randn(x.shape, generator=generator), t, batch, len(mols))
    return inputs, eps, types.argmax(-1)


def bench(preset: str, args) -> dict:
    torch.manual_seed(0)
    model = build_denoiser({"n_node_features": 6, "n_scalar_outputs": 5, "preset": preset, **args.override})
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    pool = qm9_molecules(max(args.batch_size * 4, 256), g)
    batches = [make_batch(pool[i * args.batch_size:(i + 1) * args.batch_size], g) for i in range(4)]
    step_fn = model
    if args.compile:
        step_fn = torch.compile(model, dynamic=True)

    def train_step(inputs, eps, labels):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = step_fn(inputs)
        loss = F.mse_loss(out.vector.float(), eps) + F.cross_entropy(out.scalar.float(), labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss

    for i in range(args.warmup):
        train_step(*batches[i % 4])
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        train_step(*batches[i % 4])
        times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    n_atoms = statistics.mean(b[0].pos.shape[0] for b in batches)
    row = dict(
        preset=preset,
        params=count_parameters(model),
        step_s=step,
        mol_s=args.batch_size / step,
        atoms=n_atoms,
    )
    if args.sampling:
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            model(batches[0][0])
            t0 = time.perf_counter()
            for i in range(args.steps):
                model(batches[i % 4][0])
            row["sample_call_s"] = (time.perf_counter() - t0) / args.steps
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="autocast the forward pass to bfloat16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (experimental on CPU)")
    parser.add_argument("--sampling", action="store_true", help="also time one no-grad call on the batch")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override model config keys")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.override = {}
    for item in args.set:
        key, value = item.split("=", 1)
        args.override[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    load = os.getloadavg()[0]
    print(f"# threads={args.threads} batch={args.batch_size} bf16={args.bf16} compile={args.compile} "
          f"override={args.override} load(1 min)={load:.2f}")
    header = "| preset | parameters | atoms/batch | step (s) | molecules/s |"
    print(header + (" no-grad call (s) |" if args.sampling else ""))
    print("|---|---|---|---|---|" + ("---|" if args.sampling else ""))
    for preset in args.presets:
        r = bench(preset, args)
        line = (f"| {r['preset']} | {r['params'] / 1e6:.2f} M | {r['atoms']:.0f} | {r['step_s']:.3f} "
                f"| {r['mol_s']:.0f} |")
        if args.sampling:
            line += f" {r['sample_call_s']:.3f} |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
