"""``time_limit``: a wall-clock limit per invocation that stops, saves, and lets the next invocation resume."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch

from molgen.errors import ConfigError
from molgen.training.config import load_config
from molgen.training.testing import TinyDataModule, tiny_records
from molgen.training.time_limit import parse_duration
from molgen.training.trainer import train


@pytest.mark.parametrize("value, seconds", [(90, 90.0), (1.5, 1.5), ("45", 45.0), ("02:30", 150.0),
                                            ("01:00:00", 3600.0), ("1:00:00:10", 86410.0)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "1:2:3:4:5", 0, -3, "00:00", True, [10]])
def test_parse_duration_rejects_bad_values_naming_the_key(value):
    with pytest.raises(ConfigError, match="time_limit"):
        parse_duration(value)


class SlowSteps(L.Callback):
    """Makes every training step take at least ``seconds``."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)


def test_time_limit_stops_saves_and_the_next_invocation_continues(tmp_path):
    overrides = ["model.hidden_scalars=16", "model.hidden_vectors=4", "model.n_layers=1", "model.n_radial=4",
                 "model.lmax=1", f"output_dir={tmp_path}", "trainer.accelerator=cpu", "trainer.max_epochs=-1",
                 "trainer.enable_progress_bar=false", "trainer.limit_val_batches=0", "logging.tensorboard=false",
                 "checkpoint.every_n_steps=1000", "trainer.max_steps=200", "time_limit=0.6"]
    data = TinyDataModule(tiny_records(), batch_size=2, repeats=4)
    first = train(load_config(None, overrides), extra_callbacks=[SlowSteps(0.15)], datamodule=data)
    stopped = first.trainer.global_step
    assert 1 <= stopped < 20  # stopped by the clock, far before max_steps
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == stopped  # the final state is saved although no interval checkpoint fell due
    # the same limit again: this invocation gets its own time (Lightning's max_time would stop at once)
    second = train(load_config(None, [*overrides, "resume=auto"]), extra_callbacks=[SlowSteps(0.15)], datamodule=data)
    assert stopped < second.trainer.global_step < 40
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == second.trainer.global_step
