"""Crystal readers: CDVAE CSV, CIF (multi-block, bad cells, bad elements, disorder) and ASE databases."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from molgen import keys as K
from molgen.data.convert import record_to_pymatgen
from molgen.data.readers import ReadPolicy, read_all, read_structures
from molgen.data.readers.crystals import cdvae_property_columns, read_ase_db, read_cif, split_cif_blocks
from molgen.errors import InputError

SAMPLES = {
    "perov_5_val_100.csv": ["heat_all", "heat_ref", "dir_gap", "ind_gap"],
    "carbon_24_val_100.csv": ["energy_per_atom"],
    "mp_20_train_100.csv": ["formation_energy_per_atom", "band_gap", "e_above_hull", "spacegroup.number"],
}

ROCKSALT = """data_NaCl
_cell_length_a   5.64
_cell_length_b   5.64
_cell_length_c   5.64
_cell_angle_alpha   90
_cell_angle_beta   90
_cell_angle_gamma   90
_symmetry_space_group_name_H-M   'P 1'
loop_
 _symmetry_equiv_pos_as_xyz
  'x, y, z'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  Na  Na0  0.0  0.0  0.0  1
  Cl  Cl1  0.5  0.5  0.5  1
"""


def _cif(name: str, **changes: str) -> str:
    text = ROCKSALT.replace("data_NaCl", f"data_{name}")
    for old, new in changes.items():
        text = text.replace(old.replace("__", " "), new)
    return text


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("file_name", sorted(SAMPLES))
def test_bundled_csv_samples_load_as_periodic_records(data_dir, file_name):
    path = data_dir / "crystals" / file_name
    records = read_all(path)  # dispatch: .csv with a 'cif' column -> read_cdvae_csv
    rows = _rows(path)
    assert len(records) == len(rows) == 100
    assert cdvae_property_columns(path) == SAMPLES[file_name]
    for record, row in zip(records, rows):
        n = record[K.POS].shape[0]
        assert record[K.CELL].shape == (1, 3, 3)
        assert record[K.FRAC_POS].shape == (n, 3)
        assert bool(((record[K.FRAC_POS] >= 0) & (record[K.FRAC_POS] < 1)).all())
        assert record[K.PBC].tolist() == [[True, True, True]]
        assert record[K.NAME] == row["material_id"]
        expected = [float(row[col]) for col in SAMPLES[file_name]]
        assert record[K.PROPERTIES].shape == (1, len(expected))
        assert np.allclose(record[K.PROPERTIES][0].numpy(), expected, rtol=1e-6)
        # Cartesian positions and wrapped fractional coordinates describe the same points
        frac = np.linalg.solve(record[K.CELL][0].numpy().T, record[K.POS].numpy().T).T
        delta = frac - record[K.FRAC_POS].numpy()
        assert np.allclose(delta, np.round(delta), atol=1e-8)


def test_csv_record_round_trips_to_the_cif_structure(data_dir):
    from pymatgen.core import Structure

    path = data_dir / "crystals" / "mp_20_train_100.csv"
    rows = _rows(path)[:20]
    records = read_all(path)[:20]
    for record, row in zip(records, rows):
        expected = Structure.from_str(row["cif"], fmt="cif")
        got = record_to_pymatgen(record)
        assert [s.specie.symbol for s in got] == [s.specie.symbol for s in expected]
        assert np.allclose(got.lattice.matrix, expected.lattice.matrix, atol=1e-8)
        delta = got.frac_coords - expected.frac_coords
        assert np.allclose(delta, np.round(delta), atol=1e-8)  # equal up to lattice translations


def test_text_columns_are_kept_in_info(data_dir):
    record = next(read_structures(data_dir / "crystals" / "perov_5_val_100.csv"))
    row = _rows(data_dir / "crystals" / "perov_5_val_100.csv")[0]
    assert record[K.INFO]["csv"] == {"index": row[""], "formula": row["formula"]}


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", "material_id", "cif", "energy"])
    for i, (mid, cif, energy) in enumerate(rows):
        writer.writerow([i, mid, cif, energy])
    path.write_text(out.getvalue())
    return path


def test_csv_bad_rows_raise_with_file_and_material_id_or_are_counted(tmp_path):
    path = _write_csv(
        tmp_path / "set.csv",
        [
            ("good-1", _cif("a"), "-1.5"),
            ("bad-cell", _cif("b", **{"_cell_length_b   5.64": "_cell_length_b   -1"}), "0.1"),
            ("bad-prop", _cif("c"), "high"),
            ("good-2", _cif("d"), ""),
        ],
    )
    with pytest.raises(InputError) as info:
        read_all(path)
    message = str(info.value)
    assert str(path) in message and "bad-cell" in message and "_cell_length_b" in message

    policy = ReadPolicy("skip")
    records = read_all(path, policy)
    assert [r[K.NAME] for r in records] == ["good-1", "good-2"]
    assert len(policy.skipped) == 2
    assert [e.record for e in policy.skipped.entries] == ["bad-cell (row 2)", "bad-prop (row 3)"]
    assert "not a number" in policy.skipped.entries[1].reason
    assert math.isnan(float(records[1][K.PROPERTIES][0, 0]))  # empty property -> NaN


def test_multi_block_cif_and_folder(tmp_path):
    other = _cif("KBr").replace("Na  Na0", "K  K0").replace("Cl  Cl1", "Br  Br1")
    path = tmp_path / "two.cif"
    path.write_text("# two structures\n" + _cif("NaCl") + "\n" + other)
    assert [name for name, _ in split_cif_blocks(path.read_text())] == ["NaCl", "KBr"]
    records = list(read_cif(path, ReadPolicy()))
    assert [r[K.NAME] for r in records] == ["two:NaCl", "two:KBr"]
    assert records[1][K.ATOMIC_NUMBERS].tolist() == [19, 35]
    assert torch.allclose(records[0][K.FRAC_POS], torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64))
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "x.cif").write_text(_cif("X"))
    assert len(read_all(tmp_path)) == 3  # a folder: every CIF in it


def test_symmetric_cif_is_expanded_to_the_full_cell(tmp_path):
    path = tmp_path / "fcc.cif"
    path.write_text(
        "data_Cu\n_cell_length_a 3.61\n_cell_length_b 3.61\n_cell_length_c 3.61\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'F m -3 m'\n_symmetry_Int_Tables_number 225\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        "_atom_site_fract_z\n_atom_site_occupancy\nCu1 Cu 0 0 0 1\n"
    )
    (record,) = read_all(path)
    assert record[K.ATOMIC_NUMBERS].tolist() == [29] * 4


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"_cell_length_a   5.64": "_cell_length_a   0.0"}, "_cell_length_a = 0"),
        ({"_cell_length_c   5.64": "_cell_length_c   -3.2"}, "_cell_length_c = -3.2"),
        ({"_cell_length_b   5.64": "_cell_length_b   nan"}, "_cell_length_b = nan"),
        ({"_cell_angle_gamma   90": "_cell_angle_gamma   180"}, "_cell_angle_gamma = 180"),
        (
            {"_cell_angle_alpha   90": "_cell_angle_alpha   150", "_cell_angle_beta   90": "_cell_angle_beta   150",
             "_cell_angle_gamma   90": "_cell_angle_gamma   60"},
            "singular cell",
        ),
    ],
)
def test_impossible_cell_names_file_and_block(tmp_path, change, reason):
    path = tmp_path / "cells.cif"
    bad = ROCKSALT.replace("data_NaCl", "data_broken")
    for old, new in change.items():
        bad = bad.replace(old, new)
    path.write_text(_cif("fine") + bad)
    with pytest.raises(InputError) as info:
        read_all(path)
    message = str(info.value)
    assert str(path) in message and "data_broken" in message and reason in message and "impossible cell" in message


def test_unknown_element_and_disorder_are_input_errors(tmp_path):
    unknown = tmp_path / "unknown.cif"
    unknown.write_text(_cif("odd").replace("Cl  Cl1", "Xq  Xq1"))
    with pytest.raises(InputError, match=r"data_odd.*unknown element symbol 'Xq'"):
        read_all(unknown)
    disordered = tmp_path / "disordered.cif"
    disordered.write_text(_cif("alloy").replace("0.5  0.5  0.5  1", "0.5  0.5  0.5  0.6"))
    with pytest.raises(InputError, match=r"data_alloy.*disordered.*partially occupied"):
        read_all(disordered)
    coinciding = tmp_path / "coinciding.cif"
    coinciding.write_text(_cif("twice").replace("Cl  Cl1  0.5  0.5  0.5", "Cl  Cl1  0.0  0.0  0.0"))
    with pytest.raises(InputError, match=r"data_twice"):
        read_all(coinciding)


def test_cif_skip_mode_counts_each_bad_block(tmp_path):
    path = tmp_path / "mixed.cif"
    path.write_text(
        _cif("ok1") + _cif("zero", **{"_cell_length_a   5.64": "_cell_length_a   0"})
        + _cif("elem").replace("Na  Na0", "Zz  Zz0") + _cif("ok2")
    )
    policy = ReadPolicy("skip")
    records = read_all(path, policy)
    assert [r[K.NAME] for r in records] == ["mixed:ok1", "mixed:ok2"]
    assert [e.record for e in policy.skipped.entries] == ["block data_zero", "block data_elem"]
    assert "skipped 2 record(s)" in policy.skipped.summary()


def test_mmcif_protein_is_refused_with_a_pointer(tmp_path):
    path = tmp_path / "prot.cif"
    path.write_text(
        "data_1ABC\nloop_\n_atom_site.group_PDB\n_atom_site.type_symbol\n_atom_site.Cartn_x\n"
        "_atom_site.Cartn_y\n_atom_site.Cartn_z\nATOM C 1.0 2.0 3.0\n"
    )
    with pytest.raises(InputError, match="read_protein"):
        read_all(path)


def test_ase_database_rows(tmp_path):
    import ase.db
    from ase.build import bulk, molecule

    path = tmp_path / "structures.db"
    with ase.db.connect(path) as db:
        db.write(bulk("Cu", "fcc", a=3.61, cubic=True), name="copper", energy_tag=1.5)
        db.write(molecule("H2O"))
    records = read_all(path)
    assert [r[K.NAME] for r in records] == ["copper", "id=2"]
    copper, water = records
    assert copper[K.CELL].shape == (1, 3, 3) and copper[K.ATOMIC_NUMBERS].tolist() == [29] * 4
    assert bool(((copper[K.FRAC_POS] >= 0) & (copper[K.FRAC_POS] < 1)).all())
    assert copper[K.INFO]["ase_db"] == {"id": 1, "name": "copper", "energy_tag": 1.5}
    assert K.CELL not in water and water[K.ATOMIC_NUMBERS].tolist() == [8, 1, 1]

    not_db = tmp_path / "fake.db"
    not_db.write_text("this is not sqlite")
    with pytest.raises(InputError, match="not a readable ASE database"):
        list(read_ase_db(not_db, ReadPolicy()))


@pytest.mark.slow
def test_every_row_of_the_shared_csv_families_loads(shared_data):
    expected = {
        "perov_5/val.csv": 3787, "perov_5/train_partial.csv": 116, "carbon_24/val.csv": 2032,
        "mp_20/train_partial.csv": 847, "mp_20/val_partial.csv": 123, "mp_20/test_partial.csv": 142,
    }
    for name, count in expected.items():
        path = shared_data / "crystals" / name
        records = read_all(path)
        assert len(records) == count, name
        n_props = len(cdvae_property_columns(path))
        assert all(r[K.PROPERTIES].shape == (1, n_props) for r in records)
