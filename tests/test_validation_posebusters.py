"""PoseBusters intramolecular checks and ligand-in-pocket checks (posebusters package)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem


def test_intramolecular_checks_flag_a_squashed_ring(tmp_path):
    from molgen.cli.main import main

    good = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1O"))
    AllChem.EmbedMolecule(good, randomSeed=1)
    good.SetProp("_Name", "phenol")
    squashed = Chem.Mol(good)
    conf = squashed.GetConformer()
    for i in range(squashed.GetNumAtoms()):  # compress every coordinate along x: bonds too short, angles off
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x * 0.6, p.y, p.z))
    squashed.SetProp("_Name", "squashed")
    sdf = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(sdf))
    writer.write(good)
    writer.write(squashed)
    writer.close()
    out, rows = tmp_path / "m.json", tmp_path / "m.csv"
    assert main(["validate", str(sdf), "--protocol", "charged", "--posebusters", "--json", str(out),
                 "--csv", str(rows), "--workers", "1"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["pb_bond_lengths"] == 0.5 and metrics["pb_all"] == 0.5
    assert "PoseBusters failed: pb_bond_lengths" in rows.read_text()


def test_pocket_checks(shared_data, tmp_path):
    from molgen.cli.main import main

    folder = shared_data / "proteins" / "pdbbind_3ug2"
    ligand = Chem.MolFromMolFile(str(folder / "3ug2_ligand.sdf"), removeHs=False)
    moved = Chem.Mol(ligand)
    conf = moved.GetConformer()
    centre = np.asarray(conf.GetPositions()).mean(axis=0)
    protein = Chem.MolFromPDBFile(str(folder / "3ug2_protein.pdb"), removeHs=False, sanitize=False)
    ppos = protein.GetConformer().GetPositions()
    shift = ppos[len(ppos) // 2] - centre  # put the ligand's centre on a protein atom: it clashes
    for i in range(moved.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + shift[0], p.y + shift[1], p.z + shift[2]))
    moved.SetProp("_Name", "inside the protein")
    sdf = tmp_path / "ligands.sdf"
    writer = Chem.SDWriter(str(sdf))
    writer.write(ligand)
    writer.write(moved)
    writer.close()
    out, rows = tmp_path / "c.json", tmp_path / "c.csv"
    assert main(["validate", str(sdf), "--kind", "complex", "--protein", str(folder / "3ug2_protein.pdb"),
                 "--protocol", "charged", "--json", str(out), "--csv", str(rows), "--workers", "1"]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 2
    assert metrics["no_protein_clash"] == 0.5 and metrics["volume_overlap_ok"] == 0.5
    assert metrics["pb_bond_lengths"] == 1.0
    text = rows.read_text()
    assert "no_protein_clash" in text


@pytest.mark.parametrize("energy", [False])
def test_posebusters_rows_for_unbuildable_molecules(energy):
    from molgen.validation.posebusters_checks import posebusters_molecules

    metrics, rows = posebusters_molecules([None], ["does not sanitize: test"], energy=energy, workers=1)
    assert metrics["pb_all"] == 0.0 and "does not sanitize" in rows[0]["pb_reason"]
