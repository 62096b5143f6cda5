"""The structure record and its lossless converters (RDKit, ASE, pymatgen)."""

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen import keys as K
from molgen.data.convert import (
    record_from_ase, record_from_pymatgen, record_from_rdkit, record_to_ase, record_to_pymatgen, record_to_rdkit,
)
from molgen.data.record import RecordError, make_record


@pytest.fixture
def charged_mol():
    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1C(=O)[O-]"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", "benzoate")
    mol.SetProp("source", "test")
    return mol


@pytest.fixture
def rocksalt():
    cell = np.diag([5.64, 5.64, 5.64])
    return make_record([[0, 0, 0], [2.82, 2.82, 2.82]], [11, 17], cell=cell, name="NaCl")


def test_make_record_shapes_and_defaults():
    r = make_record([[0, 0, 0], [0, 0, 0.96]], [8, 1], properties=[1.0, 2.0])
    assert r[K.POS].shape == (2, 3) and r[K.POS].dtype == torch.float64
    assert r[K.ATOMIC_NUMBERS].tolist() == [8, 1]
    assert r[K.FIXED].tolist() == [False, False]
    assert r[K.PROPERTIES].shape == (1, 2)
    assert K.CELL not in r


@pytest.mark.parametrize(
    "positions, numbers, message",
    [
        ([[0, 0, float("nan")]], [6], "non-finite"),
        ([[0, 0, 0]], [0], "not an element"),
        ([[0, 0, 0], [1, 0, 0]], [6], "atomic numbers"),
        (np.zeros((0, 3)), [], "no atoms"),
    ],
)
def test_make_record_rejects_bad_input(positions, numbers, message):
    with pytest.raises(RecordError, match=message):
        make_record(positions, numbers)


def test_singular_cell_rejected():
    with pytest.raises(RecordError, match="singular"):
        make_record([[0, 0, 0]], [6], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]])


def test_periodic_record_fractional_coordinates(rocksalt):
    assert rocksalt[K.CELL].shape == (1, 3, 3)
    assert torch.allclose(rocksalt[K.FRAC_POS], torch.tensor([[0, 0, 0], [0.5, 0.5, 0.5]], dtype=torch.float64))
    wrapped = make_record([[-0.1, 6.0, 0.0]], [6], cell=np.eye(3) * 5.0)
    frac = wrapped[K.FRAC_POS]
    assert (frac >= 0).all() and (frac < 1).all()


def test_rdkit_round_trip_keeps_everything(charged_mol):
    record = record_from_rdkit(charged_mol)
    assert record[K.FORMAL_CHARGES].sum() == -1
    back = record_to_rdkit(record, sanitize=True)
    assert Chem.MolToSmiles(back) == Chem.MolToSmiles(charged_mol)
    assert back.GetProp("_Name") == "benzoate" and back.GetProp("source") == "test"
    np.testing.assert_array_equal(back.GetConformer().GetPositions(), charged_mol.GetConformer().GetPositions())


def test_ase_round_trip_molecule_and_crystal(charged_mol, rocksalt):
    record = record_from_rdkit(charged_mol)
    record[K.FIXED][:3] = True
    atoms = record_to_ase(record)
    again = record_from_ase(atoms)
    assert torch.equal(again[K.POS], record[K.POS])
    assert torch.equal(again[K.FORMAL_CHARGES], record[K.FORMAL_CHARGES])
    assert again[K.FIXED].tolist() == record[K.FIXED].tolist()
    crystal = record_from_ase(record_to_ase(rocksalt))
    assert torch.allclose(crystal[K.CELL], rocksalt[K.CELL]) and torch.allclose(crystal[K.FRAC_POS], rocksalt[K.FRAC_POS])


def test_pymatgen_round_trip(rocksalt, charged_mol):
    structure = record_to_pymatgen(rocksalt)
    assert structure.composition.reduced_formula == "NaCl"
    again = record_from_pymatgen(structure)
    assert torch.allclose(again[K.FRAC_POS], rocksalt[K.FRAC_POS])
    assert torch.allclose(again[K.CELL], rocksalt[K.CELL])
    molecule = record_to_pymatgen(record_from_rdkit(charged_mol))
    assert molecule.charge == -1
    back = record_from_pymatgen(molecule)
    assert torch.allclose(back[K.POS], record_from_rdkit(charged_mol)[K.POS])
