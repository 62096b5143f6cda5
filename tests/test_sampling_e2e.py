"""End to end on shipped data: ``molgen train`` a few steps on data/qm9/qm9_sample.csv.gz, ``molgen sample`` to SDF,
read the file back, ``molgen validate`` it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_sample_validate_round_trip(tmp_path, capsys):
    from rdkit import Chem

    from molgen.cli.main import main

    run = tmp_path / "run"
    assert main(["train", str(REPO / "configs" / "debug.yaml"), f"output_dir={run}", "trainer.max_steps=3",
                 "trainer.limit_val_batches=0", "checkpoint.every_n_steps=3", "logging.tensorboard=false",
                 "model.n_layers=1", "diffusion.n_steps=100"]) == 0
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    capsys.readouterr()

    out = tmp_path / "samples.sdf"
    assert main(["sample", "--checkpoint", str(ckpt), "-n", "6", "-o", str(out), "--steps", "10", "--batch-size",
                 "4", "--condition", "gap=0.3", "--guidance", "2", "--spacing", "quadratic", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "6 structures" in printed and "spacing='quadratic'" in printed
    mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False, sanitize=False)]
    assert len(mols) == 6 and all(m is not None and m.GetNumAtoms() >= 1 for m in mols)
    assert all({a.GetSymbol() for a in m.GetAtoms()} <= {"H", "C", "N", "O", "F"} for m in mols)

    report = tmp_path / "metrics.json"
    assert main(["validate", str(out), "--protocol", "edm", "--json", str(report), "--workers", "1"]) == 0
    metrics = json.loads(report.read_text())
    text = json.dumps(metrics)
    assert "mol_stability" in text and "validity" in text
