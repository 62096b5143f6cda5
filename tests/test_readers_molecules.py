"""Molecule readers: SDF/MOL, XYZ / extended XYZ, GEOM pickles; clear errors for bad records."""

from __future__ import annotations

import gzip
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from molgen import keys as K
from molgen.data.readers import ReadPolicy, read_all
from molgen.data.readers.geom import geom_pickle_paths, iter_geom_conformers
from molgen.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "molecules"
SDF = FIXTURES / "charged_aromatic.sdf"


# ----------------------------------------------------------------------------------------- SDF
def test_sdf_keeps_aromatic_bonds_charges_title_and_tags():
    pyridinium, acetate = read_all(SDF)
    assert pyridinium[K.NAME] == "pyridinium"
    assert pyridinium[K.ATOMIC_NUMBERS].tolist() == [7, 6, 6, 6, 6, 6]
    assert pyridinium[K.FORMAL_CHARGES].tolist() == [1, 0, 0, 0, 0, 0]  # from "M  CHG"
    assert pyridinium[K.BOND_TYPE].tolist() == [K.BOND_AROMATIC] * 6
    assert pyridinium[K.BOND_INDEX].shape == (2, 6)
    assert pyridinium[K.INFO]["tags"] == {"activity": 6.5, "source": "hand made, two words"}
    assert torch.allclose(pyridinium[K.POS][1].double(), torch.tensor([0.6950, 1.2038, 0.0], dtype=torch.float64))
    assert acetate[K.FORMAL_CHARGES].tolist() == [0, 0, 0, -1]  # from the atom block's charge column
    assert acetate[K.BOND_TYPE].tolist() == [1, 2, 1]
    assert acetate[K.BOND_INDEX].t().tolist() == [[0, 1], [1, 2], [1, 3]]


def test_sdf_round_trip_through_rdkit_writer(tmp_path):
    from rdkit import Chem

    from molgen.data.convert.rdkit_mol import record_to_rdkit

    records = read_all(SDF)
    out = tmp_path / "again.sdf"
    writer = Chem.SDWriter(str(out))
    writer.SetKekulize(False)
    for record in records:
        writer.write(record_to_rdkit(record))
    writer.close()
    again = read_all(out)
    assert len(again) == len(records)
    for a, b in zip(records, again):
        assert a[K.NAME] == b[K.NAME]
        assert torch.equal(a[K.ATOMIC_NUMBERS], b[K.ATOMIC_NUMBERS])
        assert torch.equal(a[K.FORMAL_CHARGES], b[K.FORMAL_CHARGES])
        assert torch.equal(a[K.BOND_INDEX], b[K.BOND_INDEX])
        assert torch.equal(a[K.BOND_TYPE], b[K.BOND_TYPE])
        assert torch.allclose(a[K.POS], b[K.POS], atol=1e-4)
        assert a[K.INFO]["tags"] == b[K.INFO]["tags"]


def test_gzip_sdf_reads_like_plain(tmp_path):
    packed = tmp_path / "mols.sdf.gz"
    packed.write_bytes(gzip.compress(SDF.read_bytes()))
    plain, zipped = read_all(SDF), read_all(packed)
    assert [r[K.NAME] for r in zipped] == ["pyridinium", "acetate"]
    assert all(torch.equal(a[K.POS], b[K.POS]) for a, b in zip(plain, zipped))


def test_mol_file_without_terminator(tmp_path):
    mol = tmp_path / "one.mol"
    mol.write_text(SDF.read_text().split("$$$$")[0].split("> <activity>")[0])
    (record,) = read_all(mol)
    assert record[K.NAME] == "pyridinium" and record[K.FORMAL_CHARGES].sum() == 1


def test_v3000_record_and_its_unknown_element(tmp_path):
    from rdkit import Chem

    mol = Chem.MolFromMolBlock(SDF.read_text().split("$$$$")[0], sanitize=False, removeHs=False)
    path = tmp_path / "v3.sdf"
    path.write_text(Chem.MolToV3KMolBlock(mol, kekulize=False) + "$$$$\n")
    (record,) = read_all(path)
    assert record[K.FORMAL_CHARGES].tolist() == [1, 0, 0, 0, 0, 0]
    assert record[K.BOND_TYPE].tolist() == [K.BOND_AROMATIC] * 6
    path.write_text(path.read_text().replace(" N ", " Zz ", 1))
    with pytest.raises(InputError, match=r"record 1 \('pyridinium'\): unknown element symbol 'Zz' on atom 1"):
        read_all(path)


@pytest.mark.parametrize(
    "cut_after, reason",
    [
        ("    1.5200    0.00", "counts line announces 4 atoms but only 2 atom lines follow"),
        ("  1  2  1  0\n", "counts line announces 3 bonds but only 1 bond lines follow"),
        ("  2  4  1  0\n", "no 'M  END' line"),
    ],
)
def test_truncated_sdf_names_file_and_record(tmp_path, cut_after, reason):
    text = SDF.read_text()
    cut = tmp_path / "cut.sdf"
    cut.write_text(text[: text.index(cut_after) + len(cut_after)])
    with pytest.raises(InputError) as caught:
        read_all(cut)
    message = str(caught.value)
    assert str(cut) in message and "record 2 ('acetate')" in message
    assert "truncated" in message and reason in message and "file ends inside this record" in message


def test_sdf_unknown_element_is_reported(tmp_path):
    bad = tmp_path / "bad.sdf"
    bad.write_text(SDF.read_text().replace(" C   0  0", " Xx  0  0", 1))
    with pytest.raises(InputError, match=r"record 1 \('pyridinium'\): unknown element symbol 'Xx' on atom 2"):
        read_all(bad)


def test_sdf_non_finite_coordinate_is_reported(tmp_path):
    bad = tmp_path / "nan.sdf"
    bad.write_text(SDF.read_text().replace("    2.1500    1.0800", "       nan    1.0800", 1))
    with pytest.raises(InputError, match=r"record 2 \('acetate'\): atom 3 has a non-finite coordinate"):
        read_all(bad)


def test_sdf_skip_mode_logs_bad_records_and_keeps_good_ones(tmp_path):
    records = SDF.read_text().split("$$$$\n")[:2]
    broken = records[0].replace("pyridinium", "broken").replace(" N   0  0", " Qq  0  0")
    mixed = tmp_path / "mixed.sdf"
    mixed.write_text("$$$$\n".join([records[0], broken, records[1], records[0]]) + "$$$$\n" + records[1][:150])
    policy = ReadPolicy("skip")
    good = read_all(mixed, policy)
    assert [r[K.NAME] for r in good] == ["pyridinium", "acetate", "pyridinium"]
    assert len(policy.skipped) == 2
    first, last = policy.skipped.entries
    assert first.record == "2 ('broken')" and "unknown element symbol 'Qq'" in first.reason
    assert last.record == "5 ('acetate')" and last.reason.startswith("truncated record")
    assert "skipped 2 record(s)" in policy.skipped.summary()


def test_shared_sdf_files_load_completely(shared_data):
    bzr = read_all(shared_data / "molecules" / "rdkit_bzr.sdf")
    actives = read_all(shared_data / "molecules" / "rdkit_actives_5ht3.sdf")
    assert (len(bzr), len(actives)) == (163, 180)
    assert all(K.BOND_INDEX in r and r[K.POS].shape[0] == r[K.ATOMIC_NUMBERS].shape[0] for r in bzr + actives)
    assert sum(int((r[K.FORMAL_CHARGES] != 0).sum()) for r in bzr) == 36  # nitro groups: N+ and O-


def test_shared_ligand_with_aromatic_bond_order_4(shared_data):
    (ligand,) = read_all(shared_data / "proteins" / "pdbbind_3ug2" / "3ug2_ligand.sdf")
    assert int((ligand[K.BOND_TYPE] == K.BOND_AROMATIC).sum()) == 17


# ----------------------------------------------------------------------------------------- XYZ
WATER_AND_CO2 = """3
water
O 0.0 0.0 0.117
H 0.0 0.757 -0.467
H 0.0 -0.757 -0.467
3

C 0 0 0
8 0 0 1.16
O 0 0 -1.16
"""


def test_multi_structure_xyz(tmp_path):
    path = tmp_path / "two.xyz"
    path.write_text(WATER_AND_CO2)
    water, co2 = read_all(path)
    assert water[K.NAME] == "water" and water[K.ATOMIC_NUMBERS].tolist() == [8, 1, 1]
    assert co2[K.NAME] == "two_2" and co2[K.ATOMIC_NUMBERS].tolist() == [6, 8, 8]  # atomic numbers allowed
    assert co2[K.POS][1, 2].item() == pytest.approx(1.16)
    assert K.CELL not in water and K.BOND_INDEX not in water


def test_extxyz_with_cell_gives_periodic_record(tmp_path):
    path = tmp_path / "salt.extxyz"
    path.write_text(
        '2\nLattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3 energy=-3.5 '
        'pbc="T T T" name=rocksalt\nNa 0.0 0.0 0.0\nCl 2.0 2.0 6.0\n'
        '1\nProperties=species:S:1:pos:R:3 pbc="F F F"\nAr 0 0 0\n'
    )
    salt, argon = read_all(path)
    assert salt[K.NAME] == "rocksalt"
    assert salt[K.CELL].shape == (1, 3, 3) and torch.allclose(salt[K.CELL][0].double(), 4.0 * torch.eye(3, dtype=torch.float64))
    assert salt[K.PBC].tolist() == [[True, True, True]]
    assert torch.allclose(salt[K.FRAC_POS].double(), torch.tensor([[0, 0, 0], [0.5, 0.5, 0.5]], dtype=torch.float64))
    assert salt[K.INFO]["ase"]["energy"] == pytest.approx(-3.5)
    assert K.CELL not in argon and argon[K.NAME] == "salt_2"


def test_truncated_xyz_names_file_and_frame(tmp_path):
    path = tmp_path / "cut.xyz"
    path.write_text(WATER_AND_CO2[: WATER_AND_CO2.index("8 0 0 1.16")])
    with pytest.raises(InputError) as caught:
        read_all(path)
    assert str(caught.value) == (
        f"{path}, record 2 (line 6): truncated frame: atom count line says 3 atoms but only 1 atom lines follow"
    )


def test_xyz_unknown_element_and_non_finite(tmp_path):
    path = tmp_path / "bad.xyz"
    path.write_text(WATER_AND_CO2.replace("H 0.0 -0.757", "Xx 0.0 -0.757"))
    with pytest.raises(InputError, match=r"record 1 \(line 1\): unknown element symbol 'Xx' on atom 3"):
        read_all(path)
    path.write_text(WATER_AND_CO2.replace("C 0 0 0", "C 0 inf 0"))
    with pytest.raises(InputError, match=r"record 2 \(line 6\): atom 1 has a non-finite coordinate"):
        read_all(path)


@pytest.mark.parametrize("name", ["empty.xyz", "empty.sdf"])
def test_empty_files_are_reported(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n")
    with pytest.raises(InputError, match="holds no"):
        read_all(path)


def test_xyz_skip_mode_resynchronises_after_a_wrong_atom_count(tmp_path):
    path = tmp_path / "mixed.xyz"
    # the first frame announces 2 atoms but has 3 lines: the third becomes garbage where a count is expected
    path.write_text(WATER_AND_CO2.replace("3\nwater", "2\nwater", 1) + WATER_AND_CO2)
    policy = ReadPolicy("skip")
    records = read_all(path, policy)
    assert [r[K.NAME] for r in records] == ["water", "mixed_3", "water", "mixed_5"]
    assert records[0][K.POS].shape == (2, 3)
    (error,) = policy.skipped.entries
    assert error.record == "2 (line 5)" and "expected the atom count on this line, found 'H 0.0 -0.757 -0.467'" in str(error)


def test_raw_qm9_xyz_is_recognised_by_the_xyz_reader():
    (record,) = read_all(FIXTURES / "dsgdb9nsd_000212.xyz")
    assert record[K.NAME] == "gdb_212"
    assert record[K.POS][0, 0].item() == pytest.approx(2.1997e-6)  # written as 2.1997*^-6
    assert record[K.PROPERTIES].shape == (1, 12)


# ----------------------------------------------------------------------------------------- GEOM
def _geom_pickle(tmp_path: Path, weights=(0.2, 0.5, 0.3), smiles: str = "CC(=O)[O-]") -> Path:
    """A molecule pickle in the GEOM rdkit_folder layout, with RDKit-embedded conformers."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=len(weights), randomSeed=7))
    conformers = []
    for i, (conf_id, weight) in enumerate(zip(conf_ids, weights)):
        single = Chem.Mol(mol, confId=conf_id)
        conformers.append({
            "geom_id": 1000 + i, "set": 1, "degeneracy": 1, "totalenergy": np.float64(-20.1 - i),
            "relativeenergy": 0.5 * i, "boltzmannweight": weight, "conformerweights": [weight], "rd_mol": single,
        })
    content = {"conformers": conformers, "totalconfs": len(weights), "uniqueconfs": len(weights), "charge": -1,
               "smiles": smiles, "temperature": 298.15, "lowestenergy": -20.1}
    drugs = tmp_path / "drugs"
    drugs.mkdir(exist_ok=True)
    path = drugs / f"{smiles}.pickle"
    path.write_bytes(pickle.dumps(content))
    return path


def test_geom_conformers_of_one_molecule_share_a_split(tmp_path, monkeypatch):
    """A folder of GEOM pickles is split by molecule: no molecule has conformers in two splits."""
    from molgen.data.datasets import open_dataset

    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    molecules = ["CCO", "CCN", "CCC", "CC(C)O", "OCCO", "NCCO", "CCCO", "CCOC", "CC(=O)O", "CCCN", "CNC", "COC"]
    for smiles in molecules:
        _geom_pickle(tmp_path, (0.4, 0.35, 0.25), smiles=smiles)
    dataset = open_dataset(str(tmp_path / "drugs"))
    split_of: dict[str, set[str]] = {}
    for split in ("train", "valid", "test"):
        part = dataset.split(split)
        for i in range(len(part)):
            smiles = part[i][K.NAME].rsplit(" conformer", 1)[0]  # the packed set keeps names, not info
            split_of.setdefault(smiles, set()).add(split)
    assert sorted(split_of) == sorted(molecules)
    assert all(len(splits) == 1 for splits in split_of.values())
    assert {s for splits in split_of.values() for s in splits} == {"train", "valid", "test"}


def test_geom_pickle_one_record_per_conformer(tmp_path):
    path = _geom_pickle(tmp_path)
    records = read_all(path)
    assert len(records) == 3
    first = records[0]
    assert first[K.NAME] == "CC(=O)[O-] conformer 0"
    assert first[K.ATOMIC_NUMBERS].tolist().count(1) == 3 and first[K.FORMAL_CHARGES].sum() == -1
    assert first[K.BOND_INDEX].shape[1] == 6
    assert first[K.INFO]["geom_id"] == 1000 and first[K.INFO]["totalenergy"] == pytest.approx(-20.1)
    assert not torch.allclose(records[0][K.POS], records[1][K.POS])


def test_geom_top_conformers_by_boltzmann_weight(tmp_path):
    path = _geom_pickle(tmp_path)
    top = list(iter_geom_conformers(path, max_conformers=2))
    assert [r[K.INFO]["boltzmannweight"] for r in top] == [0.5, 0.3]
    assert [r[K.INFO]["geom_id"] for r in top] == [1001, 1002]


def test_geom_summary_lists_pickles(tmp_path):
    path = _geom_pickle(tmp_path)
    summary = tmp_path / "summary_drugs.json"
    summary.write_text(json.dumps({"CC(=O)[O-]": {"pickle_path": "drugs/CC(=O)[O-].pickle", "uniqueconfs": 3},
                                   "C": {"uniqueconfs": 0}}))
    assert geom_pickle_paths(summary) == [path]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_geom_reader_refuses_pickles_outside_the_layout(tmp_path, capsys):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"conformers": [], "smiles": "C", "x": _Payload()}))
    with pytest.raises(InputError, match="refers to 'builtins.print'.*refusing"):
        read_all(path)
    assert "never run" not in capsys.readouterr().out


def test_truncated_geom_pickle_is_reported(tmp_path):
    path = _geom_pickle(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or damaged"):
        read_all(path)
