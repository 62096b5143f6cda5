"""`molgen train` end to end on the bundled QM9 sample, resume after a crash, 2-process DDP on CPU."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from molgen.cli.main import main
from molgen.training.config import load_config
from molgen.training.testing import TinyDataModule, tiny_records
from molgen.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
DEBUG = str(REPO / "configs" / "debug.yaml")


def metric_rows(folder: Path) -> list[dict]:
    return list(csv.DictReader(folder.joinpath("metrics.csv").open()))


def test_cli_trains_on_qm9_sample_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", DEBUG, f"output_dir={out}", "trainer.max_steps=4", "checkpoint.every_n_steps=2",
               "trainer.val_check_interval=4", "trainer.log_every_n_steps=1"])
    assert rc == 0
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "checkpoints" / "step00000002.ckpt").is_file()
    assert (out / "config.yaml").is_file()
    assert list((out / "tensorboard").glob("version_0/events.out.tfevents.*"))
    rows = metric_rows(out / "csv" / "version_0")
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(l == l for l in losses)  # finite, not NaN
    assert any(r.get("val/loss") for r in rows)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    # --resume continues from step 4 to 7 (a fresh logger version)
    rc = main(["train", DEBUG, f"output_dir={out}", "trainer.max_steps=7", "checkpoint.every_n_steps=2", "--resume",
               "trainer.log_every_n_steps=1"])
    assert rc == 0
    assert "step 7" in capsys.readouterr().out
    steps = [int(r["step"]) for r in metric_rows(out / "csv" / "version_1") if r.get("train/loss")]
    assert steps and min(steps) >= 4
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7


def test_cli_unknown_key_is_an_error(capsys):
    assert main(["train", DEBUG, "trainer.max_step=3"]) == 2
    assert "trainer.max_step" in capsys.readouterr().err


class Crash(L.Callback):
    """Kills the run (an exception out of fit) when it reaches ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


class FirstStep(L.Callback):
    def __init__(self):
        self.first = None
        self.weights = None

    def on_train_start(self, trainer, pl_module):
        self.first = trainer.global_step
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    overrides = ["model.hidden_scalars=16", "model.hidden_vectors=4", "model.n_layers=1", "model.n_radial=4",
                 "model.lmax=1", f"output_dir={tmp_path}", "trainer.accelerator=cpu", "trainer.max_epochs=-1",
                 "trainer.enable_progress_bar=false", "trainer.limit_val_batches=0", "logging.tensorboard=false",
                 "checkpoint.every_n_steps=3", "trainer.max_steps=10"]
    data = TinyDataModule(tiny_records(), batch_size=2, repeats=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(load_config(None, overrides), extra_callbacks=[Crash(step=7)], datamodule=data)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 6
    probe = FirstStep()
    result = train(load_config(None, [*overrides, "resume=auto"]), extra_callbacks=[probe], datamodule=data)
    assert probe.first == 6
    assert result.trainer.global_step == 10
    for key, value in saved["state_dict"].items():  # weights, EMA and counters restored exactly
        assert torch.equal(probe.weights[key], value), key
    final = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["global_step"] == 10
    assert final["lr_schedulers"][0]["last_epoch"] == 10


def test_resume_path_must_exist(tmp_path):
    from molgen.errors import ConfigError

    cfg = load_config(None, [f"output_dir={tmp_path}", f"resume={tmp_path / 'missing.ckpt'}"])
    with pytest.raises(ConfigError, match="missing.ckpt"):
        train(cfg, datamodule=TinyDataModule(tiny_records()))


def test_ddp_two_processes_on_cpu(tmp_path):
    """`molgen train` with strategy=ddp, 2 CPU processes (gloo): completes its steps and writes one checkpoint."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "molgen.cli.main", "train", DEBUG, f"output_dir={out}", "trainer.devices=2",
           "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.max_steps=3", "checkpoint.every_n_steps=3",
           "logging.tensorboard=false", "trainer.limit_val_batches=1", "trainer.val_check_interval=3"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "step 3" in proc.stdout
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    assert "distributed_backend=gloo" in proc.stderr or "gloo" in proc.stdout + proc.stderr
