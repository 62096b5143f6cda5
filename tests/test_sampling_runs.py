"""Sampling runs with a small (untrained) network: determinism, resume, shards, inpainting, sizes, CLI.

An untrained network gives chemically meaningless structures, but every property tested here (same seed -> same
bytes, resume -> exactly N distinct structures, fixed atoms kept bit for bit, shards merged in order) holds for
any network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgen import keys as K
from molgen.errors import ConfigError
from molgen.sampling import (
    FixedAtoms,
    FixedSize,
    HistogramSizes,
    RangeSizes,
    SampleRun,
    SamplingModel,
    batch_seed,
    build_sampler,
    generate,
    generate_batch,
    parse_num_atoms,
)
from molgen.sampling.registry import list_models, model_path

REPO = Path(__file__).resolve().parents[1]

TINY = ["model.hidden_scalars=16", "model.hidden_vectors=4", "model.n_layers=1", "model.n_radial=4", "model.lmax=1",
        "diffusion.n_steps=50", "diffusion.fields.charges.enabled=true", "diffusion.conditioning.properties=[gap]"]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_module(seed: int = 0):
    from molgen.training.config import load_config
    from molgen.training.module import DiffusionModule
    from molgen.training.testing import tiny_statistics

    torch.manual_seed(seed)
    return DiffusionModule(load_config(None, TINY), tiny_statistics().to_dict()).eval()


@pytest.fixture(scope="module")
def model() -> SamplingModel:
    return SamplingModel.from_module(tiny_module())


def save_checkpoint(module, path: Path) -> Path:
    """A molgen checkpoint as the training code writes it (config and statistics as plain dicts)."""
    torch.save({"hyper_parameters": {"config": module.config, "statistics": module.statistics.to_dict()},
                "state_dict": module.state_dict(), "global_step": 0}, path)
    return path


def read_sdf(path: Path):
    from rdkit import Chem

    return [m for m in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)]


# --- sizes ---------------------------------------------------------------------------------------

def test_size_distributions():
    g = torch.Generator().manual_seed(0)
    hist = HistogramSizes({3: 10, 5: 30})
    draws = hist.sample(4000, g)
    assert set(draws.tolist()) == {3, 5}
    assert float((draws == 5).float().mean()) == pytest.approx(0.75, abs=0.03)
    assert RangeSizes(15, 20).sample(500, g).unique().tolist() == list(range(15, 21))
    assert FixedSize(18).sample(3).tolist() == [18, 18, 18]
    assert parse_num_atoms("15-20") == RangeSizes(15, 20)
    assert parse_num_atoms(" 7 ") == FixedSize(7)
    restricted = parse_num_atoms("4-9", {3: 10, 5: 30, 8: 10}, restrict_histogram=True)
    assert restricted.sizes.tolist() == [5, 8]
    for bad in ("x", "5-", "0", "9-3"):
        with pytest.raises(ConfigError):
            parse_num_atoms(bad)
    with pytest.raises(ConfigError, match="--num-atoms"):
        parse_num_atoms(None, None)


def test_variable_sizes_in_one_batch(model):
    sizes = torch.tensor([3, 7, 5])
    records = generate_batch(model, sizes, build_sampler("ddim", 4), torch.Generator().manual_seed(0))
    assert [r[K.POS].shape[0] for r in records] == [3, 7, 5]
    for r in records:
        assert set(r[K.ATOMIC_NUMBERS].tolist()) <= set(model.fields.elements)
        assert torch.isfinite(r[K.POS]).all()
        assert r[K.POS].mean(0).abs().max() < 1e-4  # zero centre of mass without fixed atoms


# --- determinism -----------------------------------------------------------------------------------

def test_same_seed_same_structures(model):
    kwargs = dict(sampler="ddpm", steps=6, batch_size=3, num_atoms="4-6")
    a = generate(model, 5, seed=11, **kwargs)
    b = generate(model, 5, seed=11, **kwargs)
    c = generate(model, 5, seed=12, **kwargs)
    assert [r[K.NAME] for r in a] == [f"molgen_{i}" for i in range(5)]
    for x, y in zip(a, b):
        assert torch.equal(x[K.POS], y[K.POS]) and torch.equal(x[K.ATOMIC_NUMBERS], y[K.ATOMIC_NUMBERS])
    assert any(not torch.equal(x[K.POS], y[K.POS]) for x, y in zip(a, c) if x[K.POS].shape == y[K.POS].shape) or \
        [x[K.POS].shape for x in a] != [y[K.POS].shape for y in c]
    # a batch depends on (seed, batch index) only: the second batch alone is the same as inside the run
    assert batch_seed(11, 1) != batch_seed(11, 0) != batch_seed(12, 0)


def test_api_outputs(model):
    from ase import Atoms
    from pymatgen.core import Molecule
    from rdkit import Chem

    mols = generate(model, 2, steps=3, num_atoms=5, as_="rdkit")
    assert all(isinstance(m, Chem.Mol) and m.GetNumAtoms() == 5 for m in mols)
    assert all(isinstance(a, Atoms) for a in generate(model, 2, steps=3, num_atoms=5, as_="ase"))
    assert all(isinstance(m, Molecule) for m in generate(model, 2, steps=3, num_atoms=5, as_="pymatgen"))
    with pytest.raises(ConfigError):
        generate(model, 1, as_="smiles")


# --- resume ----------------------------------------------------------------------------------------

class Crash(RuntimeError):
    pass


def make_run(model, out, **kw):
    base = dict(model=model, sampler=build_sampler("ddim", 4), sizes=RangeSizes(3, 6), output=out, n=10,
                batch_size=3, seed=5, progress=False)
    base.update(kw)
    return SampleRun(**base)


def test_resume_after_crash_gives_exactly_n_distinct_structures(model, tmp_path):
    reference = tmp_path / "ref.sdf"
    make_run(model, reference).run()

    out = tmp_path / "crashed.sdf"

    def crash_after_two(index, records):
        if index == 1:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        make_run(model, out, on_batch=crash_after_two).run()
    parts = sorted(p.name for p in (tmp_path / "crashed.sdf.parts").glob("batch-*"))
    assert parts == ["batch-000000.sdf", "batch-000001.sdf"] and not out.exists()
    with pytest.raises(ConfigError, match="--resume"):
        make_run(model, out).run()
    with pytest.raises(ConfigError, match="seed"):
        make_run(model, out, resume=True, seed=6).run()

    result = make_run(model, out, resume=True).run()
    assert result.merged and result.skipped_batches == 2 and result.n_generated == 4
    mols = read_sdf(out)
    names = [m.GetProp("_Name") for m in mols]
    assert len(mols) == 10 and len(set(names)) == 10 and names == [f"molgen_{i}" for i in range(10)]
    assert out.read_bytes() == reference.read_bytes()  # resumed == uninterrupted, byte for byte
    assert not (tmp_path / "crashed.sdf.parts").exists()
    # resuming a finished run does nothing
    assert make_run(model, out, resume=True).run().n_generated == 0
    with pytest.raises(ConfigError, match="exists"):
        make_run(model, out).run()


def test_sdf_bonds_are_perceived_with_edm_tables():
    from molgen.sampling.runner import perceive_bonds
    from molgen.training.testing import tiny_records

    records = tiny_records(["water", "formaldehyde", "hydrogen_cyanide"])
    assert perceive_bonds(records)
    assert [r[K.BOND_TYPE].tolist() for r in records] == [[1, 1], [2, 1, 1], [1, 3]]
    assert records[1][K.BOND_INDEX].tolist() == [[0, 0, 0], [1, 2, 3]]


def test_xyz_output_and_gzip(model, tmp_path):
    from molgen.data.readers import read_all

    out = tmp_path / "s.extxyz.gz"
    make_run(model, out, n=4).run()
    records = read_all(out)
    assert len(records) == 4 and all(3 <= r[K.POS].shape[0] <= 6 for r in records)


# --- inpainting ----------------------------------------------------------------------------------

def test_fixed_atoms_are_kept_exactly(model):
    from molgen.training.testing import MOLECULES

    z, pos, _ = MOLECULES["formaldehyde"]
    fragment = FixedAtoms(torch.tensor(z), torch.tensor(pos, dtype=torch.float64) + torch.tensor([1.3, -2.1, 0.7],
                          dtype=torch.float64), torch.zeros(4, dtype=torch.long))
    sizes = torch.tensor([6, 8, 7])
    seen = []

    def watch(i, t, x):
        seen.append(x["pos"].clone())

    for name in ("ddpm", "ddim", "dpm", "heun"):
        seen.clear()
        records = generate_batch(model, sizes, build_sampler(name, 5), torch.Generator().manual_seed(1),
                                 fixed_atoms=fragment, callback=watch)
        for r, n in zip(records, sizes.tolist()):
            assert r[K.POS].shape[0] == n
            assert torch.equal(r[K.POS][:4], fragment.pos)  # bit for bit
            assert torch.equal(r[K.ATOMIC_NUMBERS][:4], fragment.z)
            assert r[K.FIXED][:4].all() and not r[K.FIXED][4:].any()
            assert torch.isfinite(r[K.POS][4:]).all()
        # in process space the fixed atoms never move during the reverse process
        fixed_rows = torch.cat([torch.arange(4) + o for o in (0, 6, 14)])
        for x in seen[1:]:
            assert torch.equal(x[fixed_rows], seen[0][fixed_rows])
    with pytest.raises(ConfigError, match="fragment"):
        generate_batch(model, torch.tensor([4]), build_sampler("ddim", 3), None, fixed_atoms=fragment)


def test_replacement_inpainting_keeps_fragment_and_zero_com_frame(model):
    """Replace mode: the network sees no fixed atoms and a zero-CoM structure at every call; the fragment comes
    out exactly as read, and near the end of the reverse process the fragment rows hold its shape."""
    from molgen.training.testing import MOLECULES

    z, pos, _ = MOLECULES["methane"]
    fragment = FixedAtoms(torch.tensor(z), torch.tensor(pos, dtype=torch.float64) + 5.0,
                          torch.zeros(5, dtype=torch.long))
    calls = []

    class Spy:
        def __init__(self, inner):
            self.inner, self.fields = inner, inner.fields

        def __call__(self, x_t, t, context):
            calls.append((context.fixed, x_t["pos"].clone(), context.batch))
            return self.inner(x_t, t, context)

    spy = SamplingModel(model.denoiser, model.fields)
    spy_fn = Spy(spy)
    from molgen.sampling.guidance import Guidance

    class Wrap(Guidance):
        def wrap(self, inner, process):
            return spy_fn

    states = []
    records = generate_batch(model, torch.tensor([7, 6]), build_sampler("ddim", 6), torch.Generator().manual_seed(2),
                             fixed_atoms=fragment, inpaint="replace", guidance=Wrap(),
                             callback=lambda i, s, x: states.append(x["pos"].clone()))
    for r in records:
        assert torch.equal(r[K.POS][:5], fragment.pos) and torch.equal(r[K.ATOMIC_NUMBERS][:5], fragment.z)
        assert r[K.POS].shape[0] in (6, 7)
    assert len(calls) == 6
    for fixed, x, batch in calls:
        assert fixed is None
        com = torch.zeros(2, 3).index_add_(0, batch, x)
        assert com.abs().max() < 1e-4
    # last state: the fragment rows are the fragment's clean shape (up to a translation)
    last = states[-1][:5].double()
    assert torch.allclose(last - last.mean(0), fragment.pos - fragment.pos.mean(0), atol=1e-5)


def test_fragment_file(model, tmp_path):
    xyz = REPO / "tests" / "fixtures" / "molecules" / "dsgdb9nsd_000212.xyz"
    from molgen.data.readers import read_all

    frag = read_all(xyz)[0]
    m = frag[K.POS].shape[0]
    records = generate(model, 3, steps=3, fragment=xyz, num_atoms=m + 2, batch_size=2, bonds=False)
    for r in records:
        assert torch.equal(r[K.POS][:m], frag[K.POS].double())
    # without --num-atoms the training histogram is restricted to sizes that hold the fragment and new atoms
    from molgen.training.testing import MOLECULES

    z, pos, _ = MOLECULES["water"]
    water = FixedAtoms(torch.tensor(z), torch.tensor(pos, dtype=torch.float64), torch.zeros(3, dtype=torch.long))
    sizes = {r[K.POS].shape[0] for r in generate(model, 12, steps=2, fragment=water, bonds=False, batch_size=12)}
    assert sizes <= {4, 5} and sizes


# --- guidance --------------------------------------------------------------------------------------

def test_classifier_free_guidance_endpoints(model):
    from molgen.sampling.guidance import Guidance, classifier_free_mix
    from molgen.sampling.samplers import SamplingContext

    g = torch.Generator().manual_seed(0)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    x = model.process.prior_sample({"pos": torch.zeros(7, 3), "atom_types": torch.zeros(7, 5),
                                    "charges": torch.zeros(7, 1)}, batch, 2, generator=g)
    t = torch.full((2,), 0.5, dtype=torch.float64)
    cond = torch.tensor([[0.25], [0.40]])
    ctx = SamplingContext(batch=batch, n_graphs=2, condition=cond)
    plain = model(x, t, ctx)
    uncond = model(x, t, ctx.with_condition(None))
    for name in plain:
        assert torch.allclose(classifier_free_mix(model, x, t, ctx, 1.0)[name], plain[name], atol=1e-5)
        assert torch.allclose(classifier_free_mix(model, x, t, ctx, 0.0)[name], uncond[name], atol=1e-5)
        two = classifier_free_mix(model, x, t, ctx, 2.0)[name]
        assert torch.allclose(two, uncond[name] + 2 * (plain[name] - uncond[name]), atol=1e-5)
    recs = generate(model, 2, steps=3, num_atoms=4, condition={"gap": 0.3}, guidance=2.0)
    assert all(float(r[K.PROPERTIES][0, 0]) == pytest.approx(0.3) for r in recs)
    assert Guidance(cfg_scale=None).active is False


def test_constraint_guidance_pulls_structures_in():
    """Minimising the squared radius with growing strength shrinks the samples of an exact Gaussian model."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_sampling_samplers import ExactDenoiser, make_process, pos_variance, prior

    from molgen.sampling.guidance import ConstraintGuidance, Guidance

    process = make_process(categorical=False)
    model = ExactDenoiser(process, {"pos": 1.0, "feat": 1.0})

    def radius2(pos, types, batch):
        return pos.pow(2).sum()

    variances = []
    for strength in (0.0, 0.5, 2.0):
        g = torch.Generator().manual_seed(0)
        x, ctx = prior(process, 400, 5, g)
        guide = Guidance(terms=[ConstraintGuidance(radius2, strength)])
        out = build_sampler("ddpm", 100).sample(guide.wrap(model, process), process, x, ctx, generator=g)
        variances.append(pos_variance(out["pos"], 400, 5))
        com = torch.zeros(400, 3, dtype=out["pos"].dtype).index_add_(0, ctx.batch, out["pos"])
        assert com.abs().max() < 1e-8  # guidance gradients are projected to zero centre of mass
    assert variances[0] == pytest.approx(1.0, rel=0.08)
    assert variances[0] > variances[1] > variances[2]
    # exp(-s |x|^2) tilts N(0, 1) to N(0, 1 / (1 + 2 s)): the guided variance heads there
    assert variances[2] < 0.5


def test_property_predictor_trains_and_guides(model):
    from torch_geometric.loader import DataLoader

    from molgen.sampling.guidance import (ClassifierGuidance, Guidance, NoisyPropertyPredictor, predictor_loss,
                                          train_property_predictor)
    from molgen.training.testing import tiny_batch, tiny_records

    torch.manual_seed(0)
    predictor = NoisyPropertyPredictor(model.fields, ["gap"], {"hidden_scalars": 16, "hidden_vectors": 4,
                                                                "n_layers": 1, "lmax": 1})
    batch = tiny_batch()

    def low_noise_loss():
        with torch.no_grad():
            return float(predictor_loss(predictor, batch, torch.Generator().manual_seed(0), t=torch.full((6,), 0.02)))

    before = low_noise_loss()
    train_property_predictor(predictor, DataLoader(tiny_records() * 4, batch_size=6), steps=120, lr=1e-2)
    assert low_noise_loss() < 0.7 * before

    def run(scale):
        guide = Guidance(terms=[ClassifierGuidance(predictor, torch.tensor([0.45]), scale=scale)])
        return generate(model, 2, steps=4, num_atoms=4, guidance=guide, bonds=False, seed=1)

    plain = generate(model, 2, steps=4, num_atoms=4, bonds=False, seed=1)
    zero, guided = run(0.0), run(1.0)
    assert all(torch.equal(a[K.POS], b[K.POS]) for a, b in zip(plain, zero))
    assert not all(torch.equal(a[K.POS], b[K.POS]) for a, b in zip(plain, guided))
    assert all(torch.isfinite(r[K.POS]).all() for r in guided)


# --- shipped models, CLI, distributed ------------------------------------------------------------

def test_shipped_model_lookup(tmp_path):
    folder = tmp_path / "qm9_demo"
    folder.mkdir()
    (folder / "weights.ckpt").write_bytes(b"x")
    (folder / "MODEL_CARD.md").write_text("# QM9 demo model\n\nmore\n")
    (tmp_path / "empty").mkdir()
    models = list_models(tmp_path)
    assert [(m.name, m.description) for m in models] == [("qm9_demo", "QM9 demo model")]
    assert model_path("qm9_demo", tmp_path) == folder / "weights.ckpt"
    with pytest.raises(ConfigError, match="qm9_demo"):
        model_path("nope", tmp_path)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "molgen.cli.main", "sample", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_cli_lists_models_and_rejects_bad_input(tmp_path, capsys):
    from molgen.cli.main import main

    from molgen.sampling.registry import list_models

    assert main(["sample", "--model"]) == 0
    listing = capsys.readouterr().out
    assert listing.strip() and all(model.name in listing for model in list_models())
    assert main(["sample", "--checkpoint", str(tmp_path / "x.ckpt"), "-n", "2", "-o", str(tmp_path / "o.pdf")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "x.ckpt"), "-n", "2", "-o", str(tmp_path / "o.sdf")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", "x.ckpt", "-n", "2", "-o", "o.sdf", "--guidance", "2"]) == 2
    assert "--condition" in capsys.readouterr().err


def test_cli_two_processes_give_the_single_process_file(tmp_path):
    """torch.distributed over gloo, 2 CPU processes spawned by ``--devices 2``: each writes its own batches, rank 0
    merges them; the file equals the one-process run's (made in this process) byte for byte."""
    ckpt = save_checkpoint(tiny_module(), tmp_path / "tiny.ckpt")
    one = SampleRun(model=SamplingModel.load(ckpt), sampler=build_sampler("dpm", 3), sizes=RangeSizes(3, 5),
                    output=tmp_path / "one.sdf", n=7, batch_size=2, seed=3, condition={"gap": 0.3}, progress=False)
    one.run()
    common = ["--checkpoint", ckpt, "-n", 7, "--batch-size", 2, "--steps", 3, "--num-atoms", "3-5", "--seed", 3,
              "--no-progress", "--condition", "gap=0.3"]
    two = run_cli(*common, "-o", tmp_path / "two.sdf", "--devices", 2)
    assert two.returncode == 0, two.stderr
    assert "2 processes" in two.stdout
    mols = read_sdf(tmp_path / "two.sdf")
    assert len(mols) == 7 and len({m.GetProp("_Name") for m in mols}) == 7
    assert all(m.GetProp("target_gap") for m in mols)
    assert (tmp_path / "two.sdf").read_bytes() == (tmp_path / "one.sdf").read_bytes()
    assert not (tmp_path / "two.sdf.parts").exists()


def test_reduced_precision_network_keeps_float32_state(model):
    """bf16 autocast changes the network's arithmetic only: predictions come back float32 and agree with float32
    ones to bf16 accuracy; generation runs end to end; the setting is validated."""
    from molgen.sampling.model import check_precision
    from molgen.sampling.samplers import SamplingContext

    batch = torch.arange(3).repeat_interleave(5)  # [15]
    context = SamplingContext(batch=batch, n_graphs=3, fixed=None, condition=None)
    like = model.process.prepare(model.fields.raw_fields({K.POS: torch.zeros(15, 3),
                                                          K.ATOMIC_NUMBERS: torch.full((15,), 6),
                                                          K.FORMAL_CHARGES: torch.zeros(15, dtype=torch.long)}),
                                 batch, 3, None)
    x_t = model.process.prior_sample(like, batch, 3, None, torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.5, dtype=torch.float64)
    try:
        full = model(x_t, t, context)
        model.precision = "bf16"
        low = model(x_t, t, context)
        records = generate(model, 2, sampler="ddim", steps=4, num_atoms=5, bonds=False)
    finally:
        model.precision = "32"
    for name, value in full.items():
        assert low[name].dtype == torch.float32
        error = float((low[name] - value).norm() / value.norm())
        assert 0.0 < error < 0.05, (name, error)
    assert all(torch.isfinite(r[K.POS]).all() for r in records)
    assert check_precision("bf16-mixed") == "bf16" and check_precision("32-true") == "32"
    with pytest.raises(ConfigError, match="precision"):
        check_precision("64")


def test_cli_bf16_run(tmp_path):
    from molgen.cli.main import main

    ckpt = save_checkpoint(tiny_module(), tmp_path / "tiny.ckpt")
    out = tmp_path / "bf16.xyz"
    assert main(["sample", "--checkpoint", str(ckpt), "-n", "3", "-o", str(out), "--steps", "2", "--num-atoms", "4",
                 "--precision", "bf16", "--no-progress", "--condition", "gap=0.3"]) == 0
    from ase.io import read

    frames = read(out, index=":")
    assert len(frames) == 3 and all(len(f) == 4 for f in frames)
