"""Probe: does training with more weight on small diffusion times sharpen the model where it is weakest?

Fine-tunes a checkpoint's sampling (EMA) weights for ``--steps`` AdamW steps (batch 64, lr 1e-4, no EMA) with the
training times either uniform over the chain (``--mode uniform``, the control) or, on every second batch, drawn
from chain steps 1..``--low-steps`` (``--mode low-t``); then restores ``-n`` noised QM9 test molecules from chain
steps 10 and 30 (``bench_sampling.py restore``) and saves the fine-tuned checkpoint for ``molgen sample``::

    python benchmarks/probe_time_weighting.py --checkpoint molgen/models/qm9/model.ckpt --mode low-t \\
        --steps 1000 --out runs/probe_low_t          # -> runs/probe_low_t/{model.ckpt,restore.json}

Results: ``benchmarks/sampling.md`` section 3d.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent / "bench_sampling.py"


def training_times(mode: str, step: int, n_graphs: int, n_steps: int, low_steps: int,
                   generator: torch.Generator) -> torch.Tensor:
    """Times ``[n_graphs]`` in (0, 1]: uniform chain steps, or for ``low-t`` every second batch steps 1..low_steps
    (drawn after the uniform draw, so both modes see the same noise stream on the other batches)."""
    k = torch.randint(1, n_steps + 1, (n_graphs,), generator=generator)
    if mode == "low-t" and step % 2 == 1:
        k = torch.randint(1, low_steps + 1, (n_graphs,), generator=generator)
    return k.float() / n_steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--mode", choices=("uniform", "low-t"), required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--low-steps", type=int, default=50)
    parser.add_argument("-n", type=int, default=800, help="test molecules restored")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from torch_geometric.loader import DataLoader

    from molgen.data.datamodule import TrainingView
    from molgen.data.datasets import open_dataset
    from molgen.sampling.model import SamplingModel
    from molgen.training.checkpoint import load_model

    torch.manual_seed(0)
    module = load_model(args.checkpoint)
    module.denoiser.load_state_dict(module.ema_denoiser.state_dict())  # start from the sampling weights
    module.train()
    optimizer = torch.optim.AdamW(module.denoiser.parameters(), lr=1e-4, weight_decay=1e-12)
    dataset = open_dataset("qm9", verbose=False)
    loader = DataLoader(TrainingView(dataset.split("train")), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    batches, start, losses = iter(loader), time.time(), []
    for step in range(args.steps):
        batch = next(batches)
        t = training_times(args.mode, step, int(batch.num_graphs), module.process.n_steps, args.low_steps, generator)
        loss = module.compute_loss(batch, generator=generator, t=t).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.denoiser.parameters(), 10.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    print(f"{args.mode}: {args.steps} steps in {time.time() - start:.0f} s, mean loss of the last 100 "
          f"{sum(losses[-100:]) / max(len(losses[-100:]), 1):.4f}", flush=True)

    module.eval()
    module.ema_denoiser.load_state_dict(module.denoiser.state_dict())  # sample with the fine-tuned weights
    args.out.mkdir(parents=True, exist_ok=True)
    hparams = {"config": dict(module.hparams["config"]), "statistics": dict(module.hparams["statistics"])}
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, args.out / "model.ckpt")

    spec = importlib.util.spec_from_file_location("bench_sampling", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = SamplingModel.from_module(module, name=args.mode)
    test = dataset.split("test")
    originals = [test[i] for i in range(min(args.n, len(test)))]
    rows = []
    for k0 in (10, 30):
        restored = bench.restore_set(model, originals, k0)
        row = {"from chain step": k0, **bench.evaluate(restored),
               "bond spread vs originals": bench.bond_spread(restored, originals)}
        rows.append(row)
        print(row, flush=True)
    (args.out / "restore.json").write_text(json.dumps({"mode": args.mode, "steps": args.steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
