"""``init_from``: a new run starts from another run's (EMA) weights; a new condition starts with no effect."""

from __future__ import annotations

import pytest
import torch

from molgen.errors import ConfigError
from molgen.training.checkpoint import load_model
from molgen.training.config import load_config
from molgen.training.init_from import initialise_from
from molgen.training.module import DiffusionModule
from molgen.training.testing import TinyDataModule, tiny_batch, tiny_records, tiny_statistics
from molgen.training.trainer import build_module, train

TINY = ["model.hidden_scalars=16", "model.hidden_vectors=4", "model.n_layers=1", "model.n_radial=4", "model.lmax=1",
        "trainer.accelerator=cpu", "trainer.max_epochs=-1", "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0", "logging.tensorboard=false", "checkpoint.every_n_steps=1000"]


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """An unconditional tiny model trained a few steps (its EMA differs from its trained weights)."""
    out = tmp_path_factory.mktemp("source")
    config = load_config(None, [*TINY, f"output_dir={out}", "trainer.max_steps=6", "optim.lr=1e-2"])
    train(config, datamodule=TinyDataModule(tiny_records(), batch_size=2, repeats=4))
    return out / "checkpoints" / "last.ckpt"


def _batch_loss(module):
    torch.manual_seed(3)
    batch = tiny_batch()
    loss = module.compute_loss(batch, denoiser=module.inference_denoiser, generator=torch.Generator().manual_seed(1))
    return loss.loss


def test_a_conditional_model_starts_as_the_unconditional_source(source_checkpoint):
    source = load_model(source_checkpoint)
    config = load_config(None, [*TINY, "diffusion.conditioning.properties=[gap]"])
    stats = tiny_statistics().to_dict()
    module = DiffusionModule(config, stats)
    report = initialise_from(module, source_checkpoint, stats)
    assert report.from_ema and not report.unused
    assert report.fresh and all("embed_condition" in name for name in report.fresh)
    # both the trained weights and the EMA copy start from the source's EMA weights
    for name, value in source.ema_denoiser.state_dict().items():
        assert torch.equal(module.denoiser.state_dict()[name], value), name
        assert torch.equal(module.ema_denoiser.state_dict()[name], value), name
    assert int(module.n_ema_updates) == 0
    # same loss as the source on the same batch and noise, with and without the condition
    module.eval()
    expected = _batch_loss(source)
    assert torch.allclose(_batch_loss(module), expected, atol=1e-6)


def test_init_from_trains_a_new_run_from_step_zero(source_checkpoint, tmp_path):
    config = load_config(None, [*TINY, f"output_dir={tmp_path}", "trainer.max_steps=3",
                                "diffusion.conditioning.properties=[gap]", f"init_from={source_checkpoint}"])
    result = train(config, datamodule=TinyDataModule(tiny_records(), batch_size=2, repeats=4))
    assert result.trainer.global_step == 3  # a new schedule, not the source's step
    tuned = load_model(result.last_checkpoint)
    assert tuned.fields.condition_names == ["gap"]
    # the condition embedding has begun to learn
    assert tuned.denoiser.embed_condition[-1].weight.abs().sum() > 0


@pytest.mark.parametrize("change, message", [
    (["model.hidden_scalars=32"], "architectures differ"),
    (["task=property_predictor"], "trains a property_predictor"),
])
def test_init_from_refuses_a_different_model(source_checkpoint, change, message):
    config = load_config(None, [*TINY, *change])
    module = build_module(config, tiny_statistics().to_dict())
    with pytest.raises(ConfigError, match=message):
        initialise_from(module, source_checkpoint)


def test_init_from_refuses_another_atom_vocabulary(source_checkpoint):
    stats = tiny_statistics().to_dict()
    stats["element_counts"] = {**stats["element_counts"], "16": 5}  # sulfur too
    module = DiffusionModule(load_config(None, TINY), stats)
    with pytest.raises(ConfigError, match="atom encodings differ"):
        initialise_from(module, source_checkpoint, stats)


def test_init_from_names_a_missing_file(tmp_path):
    module = DiffusionModule(load_config(None, TINY), tiny_statistics().to_dict())
    with pytest.raises(ConfigError, match="init_from.*does not exist and is not a shipped model.*qm9"):
        initialise_from(module, tmp_path / "nope.ckpt")
    with pytest.raises(ConfigError, match="init_from"):
        load_config(None, ["init_from=3"])


def test_init_from_takes_a_shipped_model_name():
    from molgen.training.init_from import resolve_source

    assert resolve_source("qm9").name == "model.ckpt"


def test_an_unconditional_run_starts_as_the_conditional_sources_unconditional_mode(tmp_path):
    """init_from a conditional checkpoint into an unconditional run: the dropped condition's embedding is folded
    into the time embedding, so the new network's outputs equal the source's with the condition dropped."""
    from molgen.model.denoiser import DenoiserInput

    torch.manual_seed(0)
    stats = tiny_statistics().to_dict()
    conditional_config = load_config(None, [*TINY, "diffusion.conditioning.properties=[gap]"])
    conditional = DiffusionModule(conditional_config, stats)
    with torch.no_grad():
        for p in conditional.parameters():
            p.add_(0.1 * torch.randn_like(p))  # a trained-looking condition embedding, not the zero initialisation
    path = tmp_path / "conditional.ckpt"
    torch.save({"state_dict": conditional.state_dict(),
                "hyper_parameters": {"config": conditional_config, "statistics": stats}}, path)

    unconditional = DiffusionModule(load_config(None, TINY), stats)
    report = initialise_from(unconditional, path, stats)
    assert len(report.folded) == 4 and not report.unused and not report.fresh
    assert "unconditional mode" in report.summary()

    n_atoms, n_graphs = 7, 2
    inputs = dict(pos=torch.randn(n_atoms, 3), node_features=torch.randn(n_atoms, conditional.fields.n_node_features),
                  time=torch.rand(n_graphs), batch=torch.tensor([0, 0, 0, 1, 1, 1, 1]), n_graphs=n_graphs)
    dropped = conditional.fields.make_condition(None, n_graphs)  # [n_graphs, 2], all zeros
    given = conditional.fields.make_condition(torch.tensor([[5.0], [8.0]]), n_graphs)
    source_net = conditional.ema_denoiser  # the source's EMA weights go into both copies
    for target_net in (unconditional.denoiser, unconditional.ema_denoiser):
        expected = source_net(DenoiserInput(**inputs, condition=dropped))
        other = source_net(DenoiserInput(**inputs, condition=given))
        got = target_net(DenoiserInput(**inputs))
        assert torch.allclose(got.vector, expected.vector, atol=1e-5)
        assert torch.allclose(got.scalar, expected.scalar, atol=1e-5)
        assert not torch.allclose(got.scalar, other.scalar, atol=1e-3)  # the condition does matter in the source
