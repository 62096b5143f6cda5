"""Diagnostics of a trained denoiser: does the predicted noise have the right scale at every noise level?

A network that normalises away per-sample magnitude at its output predicts noise of a fixed norm whatever the
noise level, and sampling then fails. :func:`noise_scale_by_time` measures, per bin of diffusion time, the mean
per-atom norm of the predicted position noise ``|eps_pred|`` against the true one ``|eps|``, and their cosine.

Run on a checkpoint::

    python -m molgen.training.diagnostics runs/debug/checkpoints/last.ckpt --source qm9_sample
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from molgen import keys as K
from molgen.training.fields import POS

__all__ = ["NoiseScaleRow", "noise_scale_by_time", "format_table"]


@dataclass
class NoiseScaleRow:
    t_low: float
    t_high: float
    true_norm: float  # mean over free atoms of |eps| (per atom, 3 components)
    pred_norm: float  # mean over free atoms of |eps_pred|
    cosine: float  # mean cosine between eps_pred and eps per atom

    @property
    def ratio(self) -> float:
        return self.pred_norm / self.true_norm


@torch.no_grad()
def noise_scale_by_time(module, batches, n_bins: int = 10, seed: int = 0, use_ema: bool = True) -> list[NoiseScaleRow]:
    """Per time bin: predicted vs true position-noise norm of ``module`` on ``batches`` (an iterable of PyG batches).

    Each batch is evaluated once per bin at a time drawn uniformly inside the bin (same time for all its graphs).
    """
    module.eval()
    denoiser = module.inference_denoiser if use_ema else module.denoiser
    generator = torch.Generator().manual_seed(seed)
    edges = torch.linspace(0.0, 1.0, n_bins + 1)
    sums = torch.zeros(n_bins, 4, dtype=torch.float64)  # true, pred, cosine, count
    for batch in batches:
        n_graphs = int(batch.num_graphs)
        free = ~batch[K.FIXED] if K.FIXED in batch else torch.ones(batch.num_nodes, dtype=torch.bool)
        for b in range(n_bins):
            t_val = float(edges[b] + (edges[b + 1] - edges[b]) * torch.rand((), generator=generator))
            t_val = min(max(t_val, 1e-3), 1.0)
            t = torch.full((n_graphs,), t_val)
            out = module.compute_loss(batch, denoiser=denoiser, generator=generator, t=t)
            eps = out.noisy.targets[POS][free].double()
            pred = module.process[POS].predict_eps(out.predictions[POS], out.noisy.x_t[POS], t, batch.batch)[free].double()
            true_norm, pred_norm = eps.norm(dim=-1), pred.norm(dim=-1)
            cosine = (eps * pred).sum(-1) / (true_norm * pred_norm).clamp_min(1e-12)
            sums[b] += torch.stack([true_norm.sum(), pred_norm.sum(), cosine.sum(),
                                    torch.tensor(float(eps.shape[0]), dtype=torch.float64)])
    rows = []
    for b in range(n_bins):
        count = max(float(sums[b, 3]), 1.0)
        rows.append(NoiseScaleRow(float(edges[b]), float(edges[b + 1]), float(sums[b, 0]) / count,
                                  float(sums[b, 1]) / count, float(sums[b, 2]) / count))
    return rows


def format_table(rows: list[NoiseScaleRow]) -> str:
    lines = ["  t bin        |eps_true|  |eps_pred|  ratio  cosine"]
    for r in rows:
        lines.append(f"  {r.t_low:.2f}-{r.t_high:.2f}   {r.true_norm:9.4f}  {r.pred_norm:9.4f}  {r.ratio:5.2f}  {r.cosine:6.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from molgen.data.datamodule import StructureDataModule
    from molgen.training.checkpoint import load_model

    parser = argparse.ArgumentParser(description="Predicted vs true noise norm per diffusion-time bin.")
    parser.add_argument("checkpoint")
    parser.add_argument("--source", default=None, help="dataset (default: the checkpoint's data.source)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bins", type=int, default=10)
    args = parser.parse_args(argv)
    module = load_model(args.checkpoint)
    source = args.source or module.config["data"]["source"]
    dm = StructureDataModule(source=source, batch_size=args.batch_size, cache_dir=module.config["data"]["cache_dir"])
    loader = dm.val_dataloader()
    batches = [b for _, b in zip(range(args.batches), loader)]
    print(format_table(noise_scale_by_time(module, batches, n_bins=args.bins)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
