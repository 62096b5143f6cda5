"""`molgen data` end to end: stats on bundled data, malformed input, pockets."""

import json
import subprocess
import sys

import pytest
import torch

from molgen import keys as K
from molgen.cli.main import main

GOOD_CIF = """data_NaCl
_cell_length_a 5.64
_cell_length_b 5.64
_cell_length_c 5.64
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Na1 Na 0 0 0 1
Cl1 Cl 0.5 0.5 0.5 1
"""


def _malformed_inputs(tmp_path, shared):
    sdf = (shared / "molecules" / "rdkit_bzr.sdf").read_text()
    truncated_sdf = tmp_path / "truncated.sdf"
    truncated_sdf.write_text(sdf[: len(sdf) // 3])
    truncated_xyz = tmp_path / "truncated.xyz"
    truncated_xyz.write_text("3\nwater\nO 0 0 0\nH 0 0 0.96\n")
    bad_cell = tmp_path / "impossible_cell.cif"
    bad_cell.write_text(GOOD_CIF.replace("_cell_length_b 5.64", "_cell_length_b -5.64"))
    unknown = tmp_path / "unknown_element.xyz"
    unknown.write_text("2\nx\nC 0 0 0\nZz 0 0 1.2\n")
    pdb_lines = (shared / "proteins" / "diffsbdd_3rfm" / "3rfm.pdb").read_text().splitlines()
    atom_rows = [i for i, line in enumerate(pdb_lines) if line.startswith("ATOM")]
    pdb_lines[atom_rows[10]] = "ATOM     11  CA  GLY A  12      garbage!!!"
    garbage_pdb = tmp_path / "garbage.pdb"
    garbage_pdb.write_text("\n".join(pdb_lines) + "\n")
    ligand = shared / "proteins" / "diffsbdd_3rfm" / "3rfm_B_CFF.sdf"
    return [
        (["data", "stats", str(truncated_sdf)], "truncated.sdf"),
        (["data", "stats", str(truncated_xyz)], "truncated.xyz"),
        (["data", "stats", str(bad_cell)], "impossible_cell.cif"),
        (["data", "stats", str(unknown)], "unknown_element.xyz"),
        (["data", "pocket", str(garbage_pdb), str(ligand)], "garbage.pdb"),
    ]


def test_malformed_input_gives_one_clear_message(tmp_path, shared_data):
    for argv, file_name in _malformed_inputs(tmp_path, shared_data):
        result = subprocess.run([sys.executable, "-m", "molgen.cli.main", *argv], capture_output=True, text=True)
        assert result.returncode == 2, (argv, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        messages = [line for line in result.stderr.splitlines() if "error" in line]
        assert len(messages) == 1 and file_name in messages[0], result.stderr
        assert "record" in messages[0] or "line" in messages[0], messages[0]


def test_stats_of_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "s.json"
    assert main(["data", "stats", "qm9_sample", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_structures"] == 1000
    assert set(report["elements"]) == {"H", "C", "N", "O", "F"}
    assert 17 < report["n_atoms_mean"] < 19
    assert set(report["properties"]) >= {"mu", "gap", "U0", "Cv"}


def test_stats_of_crystals_reports_lattice(tmp_path, data_dir):
    out = tmp_path / "c.json"
    assert main(["data", "stats", str(data_dir / "crystals" / "perov_5_val_100.csv"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_structures"] == 100 and report["n_atoms_min"] == report["n_atoms_max"] == 5
    assert report["lattice"]["volume"]["min"] > 0


def test_pocket_command_writes_pdb_that_reads_back(tmp_path, shared_data):
    from molgen.data.readers.proteins import read_protein

    folder = shared_data / "proteins" / "diffsbdd_3rfm"
    out_pdb, out_json = tmp_path / "pocket.pdb", tmp_path / "pocket.json"
    argv = ["data", "pocket", str(folder / "3rfm.pdb"), str(folder / "3rfm_B_CFF.sdf"), "-o", str(out_pdb),
            "--json", str(out_json)]
    assert main(argv) == 0
    report = json.loads(out_json.read_text())
    pocket = read_protein(out_pdb)
    assert pocket[K.POS].shape[0] == report["n_pocket_atoms"] > 0
    assert report["n_residues"] == len(set(pocket[K.RESIDUE_INDEX].tolist())) > 10
    full = read_protein(folder / "3rfm.pdb")
    # every written atom is an atom of the receptor, unchanged
    distances = torch.cdist(pocket[K.POS].double(), full[K.POS].double()).min(dim=1).values
    assert distances.max() < 1e-3
