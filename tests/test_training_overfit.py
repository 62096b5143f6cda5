"""Overfitting a handful of molecules, and the predicted-noise-scale check on the briefly trained model."""

from __future__ import annotations

import pytest
import torch

from molgen.training.config import load_config
from molgen.training.diagnostics import format_table, noise_scale_by_time
from molgen.training.module import DiffusionModule
from molgen.training.testing import TinyDataModule, tiny_batch, tiny_records
from molgen.training.trainer import train

NAMES = ["water", "ammonia", "methane", "formaldehyde"]


def fixed_grid_loss(module, denoiser, batch) -> float:
    """Loss averaged over a fixed grid of times with fixed noise (comparable before / after training)."""
    losses = []
    with torch.no_grad():
        for k in range(1, 101, 3):
            t = torch.full((batch.num_graphs,), k / 100)
            losses.append(module.compute_loss(batch, denoiser=denoiser, t=t,
                                              generator=torch.Generator().manual_seed(k)).loss.item())
    return sum(losses) / len(losses)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit")
    cfg = load_config(None, [
        "model.hidden_scalars=32", "model.hidden_vectors=8", "model.n_layers=2", "model.n_radial=8", "model.lmax=1",
        f"output_dir={out}", "trainer.accelerator=cpu", "trainer.max_epochs=-1", "trainer.max_steps=200",
        "trainer.enable_progress_bar=false", "trainer.limit_val_batches=0", "logging.tensorboard=false",
        "logging.csv=false", "optim.lr=3e-3", "optim.ema.decay=0.9", "checkpoint.every_n_steps=100000",
        "diffusion.n_steps=100",
    ])
    batch = tiny_batch(NAMES)
    torch.manual_seed(0)
    data = TinyDataModule(tiny_records(NAMES), batch_size=4, repeats=50)
    untrained = DiffusionModule(cfg, data.statistics.to_dict())
    start = fixed_grid_loss(untrained, untrained.denoiser, batch)
    result = train(cfg, datamodule=data)
    return result.module, batch, start


def test_overfit_drives_loss_far_down(overfit):
    module, batch, start = overfit
    end = fixed_grid_loss(module, module.denoiser, batch)
    end_ema = fixed_grid_loss(module, module.ema_denoiser, batch)
    print(f"fixed-grid loss: start {start:.3f}, end {end:.3f}, EMA {end_ema:.3f}")
    assert end < 0.3 * start
    assert end_ema < 0.3 * start


def test_predicted_noise_scale_tracks_true(overfit):
    module, batch, _ = overfit
    rows = noise_scale_by_time(module, [batch] * 4, n_bins=10)
    print("\n" + format_table(rows))
    for row in rows:
        assert 1.0 < row.true_norm < 1.7  # |eps| of 3 zero-CoM components per atom: sqrt(3 (n-1)/n)
        assert row.pred_norm > 0.1 * row.true_norm, "predicted noise collapsed"
    for row in rows[5:]:  # t >= 0.5: the noise is identifiable, its norm must be matched, direction too
        assert 0.7 < row.ratio < 1.3, row
        assert row.cosine > 0.7, row
