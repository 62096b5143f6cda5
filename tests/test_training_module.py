"""The Lightning module: NaN guard, EMA, clipping, checkpoints (weights_only), conditioning, fixed atoms."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from molgen.training.checkpoint import load_model, read_checkpoint
from molgen.training.config import load_config
from molgen.training.module import DiffusionModule
from molgen.training.testing import MOLECULES, TinyDataModule, tiny_batch, tiny_records, tiny_statistics
from molgen.training.trainer import train

TINY_MODEL = ["model.hidden_scalars=16", "model.hidden_vectors=4", "model.n_layers=1", "model.n_radial=4",
              "model.lmax=1"]


def tiny_config(tmp_path, *overrides):
    return load_config(None, [*TINY_MODEL, f"output_dir={tmp_path}", "trainer.accelerator=cpu",
                              "trainer.max_epochs=-1", "trainer.enable_progress_bar=false",
                              "trainer.log_every_n_steps=1", "trainer.limit_val_batches=0",
                              "logging.tensorboard=false", *overrides])


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


class Recorder(L.Callback):
    def __init__(self):
        self.before, self.after, self.ema_before, self.ema_after = {}, {}, {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[batch_idx] = flat(pl_module.denoiser)
        self.ema_before[batch_idx] = flat(pl_module.ema_denoiser)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[batch_idx] = flat(pl_module.denoiser)
        self.ema_after[batch_idx] = flat(pl_module.ema_denoiser)


def test_nan_batch_is_skipped_and_counted(tmp_path):
    records = tiny_records()
    bad = copy.copy(records[3])
    bad.pos = bad.pos.clone()
    bad.pos[0, 0] = float("nan")
    data = TinyDataModule([records[0], records[1], bad, records[4]], batch_size=2)  # batch 1 holds the NaN
    cfg = tiny_config(tmp_path, "trainer.max_steps=2", "checkpoint.every_n_steps=100")
    recorder = Recorder()
    result = train(cfg, extra_callbacks=[recorder], datamodule=data)
    module = result.module
    assert int(module.n_skipped) == 1
    assert result.trainer.global_step == 2
    assert not torch.equal(recorder.before[0], recorder.after[0])  # a normal step moves the weights
    assert torch.equal(recorder.before[1], recorder.after[1])  # the NaN step does not
    assert torch.equal(recorder.ema_before[1], recorder.ema_after[1])
    assert torch.isfinite(recorder.after[1]).all()
    optimizer = result.trainer.optimizers[0]
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {1}, "AdamW moments must not advance on the skipped batch"
    # the skip is logged
    metrics = (next(tmp_path.glob("csv/version_*/metrics.csv"))).read_text()
    assert "train/skipped" in metrics.splitlines()[0]


def test_checkpoint_is_weights_only_safe_and_complete(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_steps=3", "checkpoint.every_n_steps=2", "optim.ema.decay=0.5",
                      "diffusion.conditioning.properties=[gap]")
    result = train(cfg, datamodule=TinyDataModule(tiny_records(), batch_size=2))
    assert result.last_checkpoint.is_file()
    assert (tmp_path / "checkpoints" / "step00000002.ckpt").is_file()
    raw = torch.load(result.last_checkpoint, weights_only=True)  # no code can run: tensors and containers only
    assert raw["global_step"] == 3
    assert raw["optimizer_states"] and raw["lr_schedulers"]
    assert raw["hyper_parameters"]["config"]["diffusion"]["conditioning"]["properties"] == ["gap"]
    assert raw["hyper_parameters"]["statistics"]["property_names"] == ["mu", "gap"]
    assert any(k.startswith("ema_denoiser.") for k in raw["state_dict"])
    assert int(raw["state_dict"]["n_ema_updates"]) == 3
    module = load_model(result.last_checkpoint)
    assert not module.training
    for (name, a), b in zip(module.ema_denoiser.state_dict().items(), result.module.ema_denoiser.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(flat(module.ema_denoiser), flat(module.denoiser))  # EMA is a distinct average
    assert read_checkpoint(result.last_checkpoint)["molgen"]["format"] == 1


def test_unsafe_checkpoint_is_refused(tmp_path):
    from molgen.errors import InputError

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"config": {}, "statistics": {}}, "state_dict": {}, "x": Payload()}, path)
    with pytest.raises(InputError, match="not a safe molgen checkpoint"):
        read_checkpoint(path)


def test_validation_uses_ema_and_is_deterministic(tmp_path):
    cfg = tiny_config(tmp_path)
    module = DiffusionModule(cfg, tiny_statistics().to_dict())
    with torch.no_grad():
        for p in module.ema_denoiser.parameters():
            p.add_(0.1)
    batch = tiny_batch()
    g1 = torch.Generator().manual_seed(3)
    g2 = torch.Generator().manual_seed(3)
    a = module.compute_loss(batch, denoiser=module.inference_denoiser, generator=g1).loss
    b = module.compute_loss(batch, denoiser=module.inference_denoiser, generator=g2).loss
    c = module.compute_loss(batch, denoiser=module.denoiser, generator=torch.Generator().manual_seed(3)).loss
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert module.inference_denoiser is module.ema_denoiser


def test_condition_dropout_and_layout():
    cfg = load_config(None, [*TINY_MODEL, "diffusion.conditioning.properties=[gap, mu]"])
    module = DiffusionModule(cfg, tiny_statistics().to_dict())
    fields = module.fields
    assert fields.n_conditions == 3
    batch = tiny_batch()
    cond = fields.batch_condition(batch, dropout=0.0)
    stats = tiny_statistics()
    gap = batch.y[:, 1]
    expected = (gap - stats.property_mean[1]) / stats.property_std[1]
    assert torch.allclose(cond[:, 0], expected) and (cond[:, 2] == 1).all()
    big = tiny_batch(list(MOLECULES) * 200)
    dropped = fields.batch_condition(big, dropout=0.3, generator=torch.Generator().manual_seed(0))
    rate = float((dropped[:, 2] == 0).float().mean())
    assert abs(rate - 0.3) < 0.05
    assert (dropped[dropped[:, 2] == 0] == 0).all()  # dropped rows carry no information
    uncond = fields.make_condition(None, 4)
    assert uncond.shape == (4, 3) and (uncond == 0).all()


def test_fixed_atoms_carry_no_loss_and_stay_put():
    cfg = load_config(None, [*TINY_MODEL, "diffusion.fields.charges.enabled=true"])
    module = DiffusionModule(cfg, tiny_statistics().to_dict())
    batch = tiny_batch(["methane", "water"], fixed={"methane": [0, 1, 2]})
    out = module.compute_loss(batch, generator=torch.Generator().manual_seed(0))
    fixed = batch.fixed
    for name, x0 in out.noisy.x0.items():
        assert torch.equal(out.noisy.x_t[name][fixed], x0[fixed]), name
    # methane is centred on its fixed atoms
    assert torch.allclose(out.noisy.x0["pos"][:3].mean(0), torch.zeros(3), atol=1e-6)
    # the loss ignores fixed atoms: changing their predictions changes nothing
    from molgen.diffusion import weighted_field_loss

    preds = {k: v.detach().clone() for k, v in out.predictions.items()}
    base = weighted_field_loss(module.process, preds, out.noisy, batch.batch, 2, fixed, module.fields.weights).loss
    for v in preds.values():
        v[fixed] += 100.0
    moved = weighted_field_loss(module.process, preds, out.noisy, batch.batch, 2, fixed, module.fields.weights).loss
    assert torch.equal(base, moved)


def test_time_dependent_clipping_limits_the_step(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_steps=2", "optim.clip.global_norm=1e-3", "optim.clip.min_factor=0.5",
                      "checkpoint.every_n_steps=100", "logging.csv=true")
    result = train(cfg, datamodule=TinyDataModule(tiny_records(), batch_size=3))
    lines = next(tmp_path.glob("csv/version_*/metrics.csv")).read_text().splitlines()
    header = lines[0].split(",")
    col = header.index("train/clip_threshold")
    thresholds = [float(row.split(",")[col]) for row in lines[1:] if row.split(",")[col]]
    assert thresholds and all(5e-4 - 1e-9 <= v <= 1e-3 + 1e-9 for v in thresholds)
    assert result.trainer.global_step == 2


@pytest.mark.parametrize("overrides", [
    ["diffusion.fields.atom_types.kind=categorical", "diffusion.fields.charges.enabled=true",
     "diffusion.fields.charges.kind=categorical", "diffusion.fields.charges.limit=uniform"],
    ["diffusion.parameterization=x0", "diffusion.time_sampling=continuous", "diffusion.fields.charges.enabled=true"],
])
def test_field_variants_train(overrides):
    """Categorical types / charges and x0-parameterised continuous-time training give finite losses and gradients."""
    cfg = load_config(None, [*TINY_MODEL, *overrides])
    module = DiffusionModule(cfg, tiny_statistics().to_dict())
    out = module.compute_loss(tiny_batch(), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.denoiser.parameters())
    kind = cfg["diffusion"]["fields"]["atom_types"]["kind"]
    assert module.process["atom_types"].kind == kind
    if kind == "categorical":  # noisy types stay one-hot
        x_t = out.noisy.x_t["atom_types"]
        assert torch.equal(x_t.sum(-1), torch.ones(x_t.shape[0])) and set(x_t.unique().tolist()) <= {0.0, 1.0}
    decoded = module.fields.decode(module.process.finalize(out.noisy.x0))
    assert torch.equal(decoded["z"], tiny_batch().z)
