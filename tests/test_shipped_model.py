"""The QM9 model shipped inside the package: sample -> validate round trip, as right after `pip install`."""

import json

import pytest

from molgen.cli.main import main
from molgen.sampling.registry import list_models


@pytest.fixture
def shipped_qm9():
    models = {m.name: m for m in list_models()}
    if "qm9" not in models:
        pytest.fail("the package ships no 'qm9' model (molgen/models/qm9/ with one checkpoint and MODEL_CARD.md)")
    return models["qm9"]


def test_shipped_model_is_listed_with_card(shipped_qm9, capsys):
    assert shipped_qm9.checkpoint.stat().st_size < 25_000_000
    assert shipped_qm9.card is not None and "QM9" in shipped_qm9.card.read_text()
    assert main(["sample", "--model"]) == 0
    assert "qm9" in capsys.readouterr().out


def test_sample_then_validate_round_trip(shipped_qm9, tmp_path):
    out = tmp_path / "samples.sdf"
    argv = ["sample", "--model", "qm9", "-n", "6", "-o", str(out), "--sampler", "dpm", "--steps", "20",
            "--batch-size", "6", "--seed", "1", "--no-progress"]
    assert main(argv) == 0
    report = tmp_path / "metrics.json"
    assert main(["validate", str(out), "--protocol", "edm", "--json", str(report)]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["n"] == 6
    for key in ("atom_stability", "mol_stability", "validity", "connectivity", "uniqueness", "valid_and_unique"):
        assert 0.0 <= metrics[key] <= 1.0
    # heavy atoms and hydrogens of QM9's vocabulary only
    text = out.read_text()
    assert text.count("$$$$") == 6


def test_shipped_gap_model_is_conditional_and_guidance_changes_its_samples(tmp_path):
    """``--model qm9_gap``: conditioned on the HOMO-LUMO gap; guided samples differ from unguided ones of the same
    seed (the condition embedding, zero when fine-tuning began, has been learned)."""
    from molgen.sampling.model import load_sampling_model

    models = {m.name: m for m in list_models()}
    if "qm9_gap" not in models:
        pytest.skip("no qm9_gap model in this installation")
    assert models["qm9_gap"].checkpoint.stat().st_size < 25_000_000
    assert models["qm9_gap"].card is not None and "gap" in models["qm9_gap"].card.read_text()
    assert load_sampling_model("qm9_gap").condition_names == ["gap"]
    common = ["-n", "3", "--sampler", "dpm", "--steps", "10", "--batch-size", "3", "--seed", "2", "--no-progress"]
    plain, guided = tmp_path / "plain.xyz", tmp_path / "guided.xyz"
    assert main(["sample", "--model", "qm9_gap", "-o", str(plain), *common]) == 0
    assert main(["sample", "--model", "qm9_gap", "-o", str(guided), "--condition", "gap=4.5", "--guidance", "3",
                 *common]) == 0
    assert plain.read_text().count("\n") == guided.read_text().count("\n")  # same sizes (same seed)
    assert plain.read_text() != guided.read_text()
