"""`task: property_predictor`: a noisy-structure property predictor trained by `molgen train`, loaded safely, and
used for classifier guidance by `molgen sample --classifier` and `generate(..., classifier=...)`."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from molgen.cli.main import main
from molgen.errors import ConfigError, InputError
from molgen.training.config import load_config
from molgen.training.testing import TinyDataModule, tiny_batch, tiny_records, tiny_statistics

REPO = Path(__file__).resolve().parents[1]
PREDICTOR = str(REPO / "configs" / "debug_predictor.yaml")
DEBUG = str(REPO / "configs" / "debug.yaml")
QUIET = ["trainer.limit_val_batches=0", "logging.tensorboard=false"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 5-step debug predictor and a 3-step debug denoiser (conditioned on gap, as configs/debug.yaml)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", PREDICTOR, f"output_dir={root / 'pred'}", "trainer.max_steps=5", "checkpoint.every_n_steps=5",
                 "logging.tensorboard=false", "trainer.val_check_interval=5", "trainer.log_every_n_steps=1"]) == 0
    assert main(["train", DEBUG, f"output_dir={root / 'den'}", "trainer.max_steps=3", "checkpoint.every_n_steps=3",
                 "model.n_layers=1", *QUIET]) == 0
    return root / "pred" / "checkpoints" / "last.ckpt", root / "den" / "checkpoints" / "last.ckpt"


def test_config_task_switch_and_predictor_section():
    cfg = load_config(PREDICTOR)
    assert cfg["task"] == "property_predictor" and cfg["predictor"]["properties"] == ["gap"]
    assert load_config(DEBUG)["task"] == "denoiser"  # the default
    assert load_config(PREDICTOR, ["predictor.network.n_layers=1"])["predictor"]["network"]["n_layers"] == 1
    with pytest.raises(ConfigError, match="task"):
        load_config(None, ["task=classifier"])
    with pytest.raises(ConfigError, match="predictor.propertys"):
        load_config(None, ["predictor.propertys=[gap]"])
    with pytest.raises(ConfigError, match="predictor.properties"):
        load_config(None, ["predictor.properties=[]"])
    with pytest.raises(ConfigError, match="max_time"):
        load_config(None, ["predictor.max_time=0"])
    assert load_config(str(REPO / "configs" / "qm9_gap_predictor.yaml"))["data"]["source"] == "qm9"


def test_molgen_train_writes_a_weights_only_predictor_checkpoint(checkpoints):
    from molgen.sampling.guidance import NoisyPropertyPredictor
    from molgen.training.checkpoint import load_model, load_predictor

    pred_ckpt, den_ckpt = checkpoints
    raw = torch.load(pred_ckpt, weights_only=True)
    assert raw["global_step"] == 5
    assert raw["hyper_parameters"]["config"]["task"] == "property_predictor"
    assert isinstance(raw["hyper_parameters"]["statistics"], dict)
    assert raw["molgen"]["task"] == "property_predictor"
    assert "optimizer_states" in raw and any(k.startswith("predictor.net.") for k in raw["state_dict"])
    module = load_predictor(pred_ckpt)
    assert isinstance(module.predictor, NoisyPropertyPredictor) and module.predictor.property_names == ["gap"]
    for name, value in module.state_dict().items():
        assert torch.equal(value, raw["state_dict"][name])
    metrics = (pred_ckpt.parents[1] / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/loss" in metrics and "val/loss" in metrics
    # each loader refuses the other kind with a message saying what to do
    with pytest.raises(InputError, match="--classifier"):
        load_model(pred_ckpt)
    with pytest.raises(InputError, match="property_predictor"):
        load_predictor(den_ckpt)


def test_predictor_training_resumes(tmp_path):
    out = tmp_path / "pred"
    common = [PREDICTOR, f"output_dir={out}", "checkpoint.every_n_steps=2", "predictor.network.n_layers=1", *QUIET]
    assert main(["train", *common, "trainer.max_steps=2"]) == 0
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert main(["train", *common, "trainer.max_steps=4", "trainer.log_every_n_steps=1", "--resume"]) == 0
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    rows = list(csv.DictReader((out / "csv" / "version_1" / "metrics.csv").open()))
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert steps and min(steps) >= 2  # continued from step 2, not from scratch
    assert first["global_step"] == 2 and first["optimizer_states"]


class LossProbe(L.Callback):
    """The predictor loss of a fixed batch at fixed times and noise, at the start and the end of training."""

    def __init__(self):
        self.batch = tiny_batch(["water", "methane", "formaldehyde", "hydrogen_cyanide"])
        self.t = torch.tensor([0.05, 0.2, 0.1, 0.3])
        self.values = []

    def measure(self, module) -> float:
        generator = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return float(module.compute_loss(self.batch, generator, t=self.t))

    def on_train_start(self, trainer, pl_module):
        self.values.append(self.measure(pl_module))

    def on_train_end(self, trainer, pl_module):
        self.values.append(self.measure(pl_module))


def test_predictor_loss_decreases_when_overfitting_a_few_molecules(tmp_path):
    from molgen.training.predictor_module import PropertyPredictorModule
    from molgen.training.trainer import train

    records = tiny_records(["water", "methane", "formaldehyde", "hydrogen_cyanide"])
    config = load_config(PREDICTOR, [f"output_dir={tmp_path}", "trainer.max_steps=100", "optim.lr=3e-3",
                                     "optim.scheduler.name=constant", "optim.scheduler.warmup_steps=0",
                                     "predictor.max_time=0.3",
                                     "diffusion.fields.charges.enabled=false", "logging.csv=false", *QUIET])
    probe = LossProbe()
    result = train(config, extra_callbacks=[probe],
                   datamodule=TinyDataModule(records, batch_size=4, repeats=10, statistics=tiny_statistics()))
    assert isinstance(result.module, PropertyPredictorModule) and result.trainer.global_step == 100
    before, after = probe.values
    assert after < 0.5 * before, (before, after)


def test_check_compatible_refuses_a_different_process():
    from molgen.sampling.guidance import check_compatible
    from molgen.training.fields import FieldSet

    stats = tiny_statistics()
    same = FieldSet(load_config(DEBUG)["diffusion"], stats)
    check_compatible(FieldSet(load_config(PREDICTOR)["diffusion"], stats), same)  # conditioning does not matter
    other = FieldSet(load_config(PREDICTOR, ["diffusion.fields.charges.enabled=false"])["diffusion"], stats)
    with pytest.raises(ConfigError, match="different noise process"):
        check_compatible(other, same)


def test_sample_with_classifier_end_to_end(checkpoints, tmp_path, capsys):
    from rdkit import Chem

    pred_ckpt, den_ckpt = checkpoints
    base = ["sample", "--checkpoint", str(den_ckpt), "-n", "4", "--steps", "6", "--batch-size", "4", "--seed", "3",
            "--no-progress"]
    guided, plain = tmp_path / "guided.xyz", tmp_path / "plain.xyz"
    assert main([*base, "-o", str(guided), "--classifier", str(pred_ckpt), "--condition", "gap=6.5",
                 "--classifier-scale", "5"]) == 0
    assert "4 structures" in capsys.readouterr().out
    assert main([*base, "-o", str(plain), "--condition", "gap=6.5"]) == 0
    # the classifier's gradient steers the reverse process: same seed, different structures
    assert guided.read_text() != plain.read_text()
    sdf = tmp_path / "guided.sdf"
    assert main([*base, "-o", str(sdf), "--classifier", str(pred_ckpt), "--condition", "gap=6.5",
                 "--guidance", "2"]) == 0
    mols = list(Chem.SDMolSupplier(str(sdf), removeHs=False, sanitize=False))
    assert len(mols) == 4 and all(m is not None and m.GetNumAtoms() >= 1 for m in mols)
    capsys.readouterr()
    # option errors: exit code 2 with a message naming the problem
    assert main([*base, "-o", str(tmp_path / "x.xyz"), "--classifier", str(pred_ckpt)]) == 2
    assert "--classifier needs --condition" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "y.xyz"), "--classifier-scale", "2", "--condition", "gap=1"]) == 2
    assert "--classifier-scale needs --classifier" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "z.xyz"), "--classifier", str(pred_ckpt), "--condition", "mu=1"]) == 2
    assert "gap" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(pred_ckpt), "-n", "1", "-o", str(tmp_path / "w.xyz")]) != 0
    assert "property-predictor checkpoint" in capsys.readouterr().err


def test_generate_api_takes_a_classifier(checkpoints, tmp_path):
    from molgen.sampling import generate
    from molgen.training.checkpoint import load_predictor

    pred_ckpt, den_ckpt = checkpoints
    kwargs = dict(steps=4, batch_size=3, seed=1, bonds=False, condition={"gap": 6.5})
    from_path = generate(den_ckpt, 3, classifier=pred_ckpt, classifier_scale=3.0, **kwargs)
    predictor = load_predictor(pred_ckpt).predictor
    from_object = generate(den_ckpt, 3, classifier=predictor, classifier_scale=3.0, **kwargs)
    plain = generate(den_ckpt, 3, **kwargs)
    assert len(from_path) == 3
    for a, b in zip(from_path, from_object):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.z, b.z)
    assert any(not torch.equal(a.pos, b.pos) for a, b in zip(from_path, plain))
    # a bare NoisyPropertyPredictor.save file loads too (against the guided model's fields): same structures
    bare = tmp_path / "predictor.pt"
    predictor.save(bare)
    from_bare = generate(den_ckpt, 3, classifier=bare, classifier_scale=3.0, **kwargs)
    for a, b in zip(from_path, from_bare):
        assert torch.equal(a.pos, b.pos)
