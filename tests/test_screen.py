"""Drug-likeness screening: properties of known molecules, alerts, filters, dedup, CLI."""

from __future__ import annotations

import csv

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.validation.screening import ScreenFilters, alerts, properties


def _mol3d(smiles: str, name: str):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", name)
    return mol


def test_known_properties():
    aspirin = properties(Chem.AddHs(Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")))
    assert aspirin["qed"] == pytest.approx(0.55, abs=0.01)  # Bickerton et al. 2012 list aspirin at 0.55
    assert aspirin["mw"] == pytest.approx(180.16, abs=0.01) and aspirin["hbd"] == 1
    assert aspirin["lipinski_violations"] == 0 and aspirin["veber"]
    assert properties(Chem.MolFromSmiles("c1ccccc1"))["sa_score"] == pytest.approx(1.0, abs=0.05)
    octacontane = properties(Chem.MolFromSmiles("C" * 40))
    assert octacontane["lipinski_violations"] == 2  # MW > 500 and logP > 5
    assert octacontane["rotatable_bonds"] == 37 and not octacontane["veber"]


def test_alert_catalogs():
    rhodanine = Chem.MolFromSmiles("S=C1SC(=Cc2ccccc2)C(=O)N1")  # 5-benzylidene rhodanine, a classic PAINS
    assert any("ene_rhod" in a for a in alerts(rhodanine, "PAINS"))
    assert any("nitro" in a for a in alerts(Chem.MolFromSmiles("O=[N+]([O-])c1ccccc1"), "BRENK"))
    assert alerts(Chem.MolFromSmiles("c1ccccc1"), "PAINS") == []


def test_filter_reasons():
    p = properties(Chem.MolFromSmiles("C" * 40))
    reasons = ScreenFilters(lipinski_max_violations=1, veber=True, mw_max=400).reasons(p)
    assert [r.split(":")[0] for r in reasons] == ["MW", "Lipinski", "Veber"]
    assert ScreenFilters().reasons(p) == []


def test_cli_screen(tmp_path):
    from molgen.cli.main import main

    sdf = tmp_path / "in.sdf"
    writer = Chem.SDWriter(str(sdf))
    for smiles, name in [("CC(=O)Oc1ccccc1C(=O)O", "aspirin"), ("S=C1SC(=Cc2ccccc2)C(=O)N1", "rhodanine"),
                         ("CC(=O)Oc1ccccc1C(=O)O", "aspirin copy"), ("C" * 40, "octacontane"),
                         ("c1ccccc1", "benzene")]:
        writer.write(_mol3d(smiles, name))
    writer.close()
    # a carbon with five bonds: readable, but RDKit cannot sanitize it
    bad = Chem.RWMol()
    for _ in range(6):
        bad.AddAtom(Chem.Atom(6))
    for j in range(1, 6):
        bad.AddBond(0, j, Chem.BondType.SINGLE)
    bad = bad.GetMol()
    bad.UpdatePropertyCache(strict=False)
    AllChem.Compute2DCoords(bad)
    bad.SetProp("_Name", "pentavalent")
    with open(sdf, "a") as handle:
        handle.write(Chem.MolToMolBlock(bad) + "$$$$\n")

    out, table = tmp_path / "kept.sdf", tmp_path / "all.csv"
    code = main(["screen", str(sdf), "-o", str(out), "--csv", str(table), "--pains", "--lipinski", "1"])
    assert code == 0
    kept = [m for m in Chem.SDMolSupplier(str(out), removeHs=False)]
    assert [m.GetProp("_Name") for m in kept] == ["aspirin", "benzene"]
    assert kept[0].GetDoubleProp("qed") == pytest.approx(0.55, abs=0.01) and kept[0].HasProp("sa_score")
    rows = {r["name"].split(" ", 1)[1]: r for r in csv.DictReader(open(table))}
    assert len(rows) == 6
    assert rows["rhodanine"]["reason"].startswith("PAINS alert")
    assert rows["aspirin copy"]["reason"].startswith("duplicate")
    assert rows["octacontane"]["reason"].startswith("Lipinski")
    assert rows["pentavalent"]["reason"].startswith("does not sanitize")
    assert rows["aspirin"]["passed"] == "True" and rows["aspirin"]["reason"] == ""


def test_cli_screen_xyz_without_bonds(tmp_path):
    from molgen.cli.main import main

    xyz = tmp_path / "m.xyz"
    xyz.write_text("3\nwater\nO 0 0 0\nH 0.957 0 0\nH -0.24 0.927 0\n")
    out = tmp_path / "kept.sdf"
    assert main(["screen", str(xyz), "-o", str(out), "--preset", "druglike"]) == 0
    kept = list(Chem.SDMolSupplier(str(out), removeHs=False))
    assert len(kept) == 1 and kept[0].GetNumAtoms() == 3 and kept[0].GetProp("SMILES") == "O"
