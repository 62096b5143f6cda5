"""Config loading: defaults, YAML, dotted overrides, unknown keys, and every shipped config builds a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from molgen.errors import ConfigError
from molgen.training.config import DEFAULTS, load_config
from molgen.training.testing import tiny_batch, tiny_statistics

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_overrides_are_typed():
    cfg = load_config(None, ["trainer.max_steps=50", "optim.lr=3e-4", "optim.betas=[0.8, 0.9]",
                             "data.cache_dir=null", "optim.ema.enabled=false", "trainer.strategy=ddp"])
    assert cfg["trainer"]["max_steps"] == 50 and cfg["optim"]["lr"] == 3e-4
    assert cfg["optim"]["betas"] == [0.8, 0.9] and cfg["data"]["cache_dir"] is None
    assert cfg["optim"]["ema"]["enabled"] is False and cfg["trainer"]["strategy"] == "ddp"
    assert DEFAULTS["trainer"]["max_steps"] == -1  # defaults untouched


@pytest.mark.parametrize("override, name", [
    ("trainer.max_step=5", "trainer.max_step"),
    ("optim.ema.decy=0.9", "optim.ema.decy"),
    ("nonsense=1", "nonsense"),
])
def test_unknown_key_is_named(override, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_config(None, [override])


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  learning_rate: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*optim\.learning_rate"):
        load_config(path)
    path.write_text("optim:\n  lr: 1e-3\n")
    assert load_config(path)["optim"]["lr"] == 1e-3  # '1e-3' without a dot is a float


def test_bad_values():
    with pytest.raises(ConfigError, match="diffusion.fields.atom_types.kind"):
        load_config(None, ["diffusion.fields.atom_types.kind=binary"])
    with pytest.raises(ConfigError, match="dropout"):
        load_config(None, ["diffusion.conditioning.dropout=1.5"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["trainer.max_steps"])
    with pytest.raises(ConfigError, match="n_node_features"):
        load_config(None, ["model.n_node_features=3"])


def test_schedule_sections_are_open():
    cfg = load_config(None, ["diffusion.fields.pos.schedule.power=3"])
    assert cfg["diffusion"]["fields"]["pos"]["schedule"] == {"name": "polynomial", "power": 3, "precision": 1e-5}
    cfg = load_config(None, ["diffusion.fields.pos.schedule.name=cosine"])
    assert cfg["diffusion"]["fields"]["pos"]["schedule"] == {"name": "cosine"}  # parameters of the old one dropped
    cfg = load_config(None, ["model.n_layers=2", "model.hidden_scalars=16"])
    assert cfg["model"]["n_layers"] == 2 and cfg["model"]["preset"] == "small"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_build_and_train_one_batch(path):
    """Every config resolves, builds its module and takes one optimizer step on a real-size batch."""
    import torch

    from molgen.training.module import DiffusionModule

    cfg = load_config(path)
    module = DiffusionModule(cfg, tiny_statistics().to_dict())
    batch = tiny_batch()
    optimizer = torch.optim.AdamW(module.denoiser.parameters(), lr=1e-4)
    out = module.compute_loss(batch, condition_dropout=cfg["diffusion"]["conditioning"]["dropout"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    optimizer.step()
    assert set(out.fields) == {"pos", "atom_types"} | ({"charges"} if cfg["diffusion"]["fields"]["charges"]["enabled"] else set())
