"""Writers produce files the readers (and RDKit / ASE / pymatgen) read back unchanged."""

import numpy as np
import pytest
import torch
from ase.io import read as ase_read
from pymatgen.io.cif import CifParser
from rdkit import Chem

from molgen import keys as K
from molgen.data.readers import read_all
from molgen.data.record import make_record
from molgen.export import write_structures


@pytest.fixture
def co2():
    return make_record([[0, 0, 0], [0, 0, 1.16], [0, 0, -1.16]], [6, 8, 8], formal_charges=[0, 0, 0],
                       bonds=[[0, 1], [0, 2]], bond_types=[2, 2], properties=[0.5], name="CO2")


def test_sdf_round_trip_and_append(tmp_path, co2):
    path = tmp_path / "out.sdf"
    assert write_structures([co2], path, property_names=["gap"]) == 1
    assert write_structures([co2, co2], path, append=True) == 2
    mols = [m for m in Chem.SDMolSupplier(str(path))]
    assert len(mols) == 3 and Chem.MolToSmiles(mols[0]) == "O=C=O"
    assert mols[0].GetDoubleProp("gap") == pytest.approx(0.5)
    again = read_all(path)
    assert torch.allclose(again[0][K.POS].double(), co2[K.POS], atol=1e-4)
    assert again[0][K.BOND_TYPE].tolist() == [2, 2]


def test_xyz_extxyz_gz(tmp_path, co2):
    write_structures([co2, co2], tmp_path / "out.xyz")
    assert len(ase_read(tmp_path / "out.xyz", index=":")) == 2
    crystal = make_record([[0, 0, 0], [2.8, 2.8, 2.8]], [11, 17], cell=np.eye(3) * 5.6, name="NaCl")
    write_structures([crystal], tmp_path / "out.extxyz.gz")
    back = read_all(tmp_path / "out.extxyz.gz")[0]
    assert torch.allclose(back[K.CELL].double(), crystal[K.CELL])


def test_cif(tmp_path):
    crystals = [make_record([[0, 0, 0], [2.8, 2.8, 2.8]], [11, 17], cell=np.eye(3) * a, name=f"NaCl-{a}")
                for a in (5.6, 5.7)]
    write_structures(crystals, tmp_path / "out.cif")
    text = (tmp_path / "out.cif").read_text()
    assert "data_NaCl-5.6" in text and "data_NaCl-5.7" in text
    structures = CifParser.from_str(text).parse_structures(primitive=False)
    assert len(structures) == 2 and structures[0].composition.reduced_formula == "NaCl"
