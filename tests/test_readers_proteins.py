"""Protein readers: PDB/mmCIF receptors, pockets, complexes and the CrossDocked / PDBbind layouts."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from molgen import keys as K
from molgen.data.readers import ReadPolicy
from molgen.data.readers.proteins import (
    iter_crossdocked,
    iter_pdbbind,
    load_crossdocked_index,
    load_crossdocked_split,
    pocket_from_center,
    pocket_from_ligand,
    read_ligand,
    read_pocket,
    read_protein,
)
from molgen.elements import AMINO_ACIDS
from molgen.errors import InputError

LIG_1H36 = "1h36_A_rec_1h36_r88_lig_tt_docked_0.sdf"
POCKET_1H36 = "1h36_A_rec_1h36_r88_lig_tt_docked_0_pocket10.pdb"


@pytest.fixture
def crossdocked_dir(data_dir) -> Path:
    return data_dir / "proteins" / "crossdocked_1h36"


@pytest.fixture
def pdbbind_dir(data_dir) -> Path:
    return data_dir / "proteins" / "pdbbind"


def _pdb_line(record, serial, name, resname, chain, resseq, x, y, z, element, altloc=" ", occ=1.0):
    return (
        f"{record:<6}{serial:>5} {name:<4}{altloc}{resname:>3} {chain}{resseq:>4}    "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{20.0:6.2f}          {element:>2}\n"
    )


def _residue_keys(record, offset=0):
    info = record[K.INFO] if "atom_names" in record[K.INFO] else record[K.INFO]["protein"]
    return set(zip(info["chain_ids"], info["residue_numbers"], info["insertion_codes"], info["residue_names"]))


def _brute_force_pocket(protein, ligand_pos: np.ndarray, radius: float) -> set:
    """Residues of a receptor record with any atom within radius of any ligand atom, by plain loops."""
    info = protein[K.INFO]
    pos = protein[K.POS].numpy()
    chosen = set()
    for k in range(pos.shape[0]):
        if np.sqrt(((ligand_pos - pos[k]) ** 2).sum(axis=1)).min() <= radius:
            keys = ("chain_ids", "residue_numbers", "insertion_codes", "residue_names")
            chosen.add(tuple(info[key][k] for key in keys))
    return chosen


def _check_pocket(protein_path: Path, ligand_path: Path) -> None:
    protein = read_protein(protein_path)
    ligand = read_ligand(ligand_path)
    complex_ = read_pocket(protein_path, ligand_path)
    n_lig = complex_[K.INFO]["n_ligand_atoms"]
    assert n_lig == ligand[K.POS].shape[0]
    assert _residue_keys(complex_) == _brute_force_pocket(protein, ligand[K.POS].numpy(), 10.0)
    # every pocket residue has an atom within 10 Å, and residues are whole (all their atoms are kept)
    pocket_pos = complex_[K.POS][n_lig:].numpy()
    residues = complex_[K.RESIDUE_INDEX][n_lig:].numpy()
    distances = np.sqrt(((pocket_pos[:, None, :] - ligand[K.POS].numpy()[None]) ** 2).sum(-1)).min(axis=1)
    for residue in np.unique(residues):
        assert distances[residues == residue].min() <= 10.0
    atoms_per_residue = {}
    for key in zip(protein[K.INFO]["chain_ids"], protein[K.INFO]["residue_numbers"]):
        atoms_per_residue[key] = atoms_per_residue.get(key, 0) + 1
    info = complex_[K.INFO]["protein"]
    kept = {}
    for key in zip(info["chain_ids"], info["residue_numbers"]):
        kept[key] = kept.get(key, 0) + 1
    assert all(atoms_per_residue[key] == count for key, count in kept.items())
    # layout: ligand first and free, then fixed protein atoms
    assert not bool(complex_[K.FIXED][:n_lig].any()) and bool(complex_[K.FIXED][n_lig:].all())
    assert not bool(complex_[K.IS_PROTEIN][:n_lig].any()) and bool(complex_[K.IS_PROTEIN][n_lig:].all())
    assert (complex_[K.RESIDUE_TYPE][:n_lig] == -1).all() and (complex_[K.RESIDUE_INDEX][:n_lig] == -1).all()
    assert ((complex_[K.RESIDUE_TYPE][n_lig:] >= -1) & (complex_[K.RESIDUE_TYPE][n_lig:] < len(AMINO_ACIDS))).all()
    assert torch.equal(complex_[K.BOND_INDEX], ligand[K.BOND_INDEX])
    assert torch.equal(complex_[K.POS][:n_lig], ligand[K.POS])
    backbone_names = [n for n, b in zip(info["atom_names"], complex_[K.IS_BACKBONE][n_lig:].tolist()) if b]
    assert set(backbone_names) == {"N", "CA", "C", "O"}
    assert len(info["atom_names"]) == complex_[K.POS].shape[0] - n_lig


def test_crossdocked_pocket_matches_brute_force(crossdocked_dir):
    _check_pocket(crossdocked_dir / POCKET_1H36, crossdocked_dir / LIG_1H36)
    complex_ = read_pocket(crossdocked_dir / POCKET_1H36, crossdocked_dir / LIG_1H36)
    assert complex_[K.RESIDUE_INDEX].max() + 1 == 72  # the pocket10 crop is kept whole


def test_3rfm_pocket_matches_brute_force_and_drops_the_hetatm_ligand(shared_data):
    folder = shared_data / "proteins" / "diffsbdd_3rfm"
    _check_pocket(folder / "3rfm.pdb", folder / "3rfm_B_CFF.sdf")
    # independent of the reader: residues of raw ATOM lines with an atom within 10 Å of the ligand
    ligand_pos = read_ligand(folder / "3rfm_B_CFF.sdf")[K.POS].numpy()
    raw = set()
    for line in (folder / "3rfm.pdb").read_text().splitlines():
        if line.startswith("ATOM"):
            xyz = np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])
            if np.sqrt(((ligand_pos - xyz) ** 2).sum(axis=1)).min() <= 10.0:
                raw.add((line[21].strip(), line[22:26].strip(), line[26].strip(), line[17:20]))
    assert _residue_keys(read_pocket(folder / "3rfm.pdb", folder / "3rfm_B_CFF.sdf")) == raw
    protein = read_protein(folder / "3rfm.pdb")
    assert "CFF" not in protein[K.INFO]["residue_names"]
    assert protein[K.INFO]["excluded"] == {"HETATM CFF": 14}
    # keeping the ligand residue in the receptor is caught as a clash with the ligand
    with pytest.raises(InputError, match="ligand_residues"):
        read_pocket(folder / "3rfm.pdb", folder / "3rfm_B_CFF.sdf", keep_hetero=["CFF"])


@pytest.mark.parametrize(
    "folder, protein, ligand",
    [
        ("pdbbind_3ug2", "3ug2_protein.pdb", "3ug2_ligand.sdf"),
        ("diffsbdd_5ndu", "5ndu.pdb", "5ndu_C_8V2.sdf"),
        ("pocket2mol_4yhj", "4yhj.pdb", "4yhj_reference_ligand.sdf"),
    ],
)
def test_every_shared_complex_gives_a_pocket(shared_data, folder, protein, ligand):
    base = shared_data / "proteins" / folder
    complex_ = read_pocket(base / protein, base / ligand)
    n_lig = complex_[K.INFO]["n_ligand_atoms"]
    names = set(complex_[K.INFO]["protein"]["residue_names"])
    assert complex_[K.POS].shape[0] > n_lig and names <= set(AMINO_ACIDS)  # no water, ligand, buffer or ion


def test_bundled_3ug2_crop_gives_the_full_protein_pocket(pdbbind_dir, shared_data):
    small = read_pocket(pdbbind_dir / "3ug2" / "3ug2_protein.pdb", pdbbind_dir / "3ug2" / "3ug2_ligand.sdf")
    full_dir = shared_data / "proteins" / "pdbbind_3ug2"
    full = read_pocket(full_dir / "3ug2_protein.pdb", full_dir / "3ug2_ligand.sdf")
    assert torch.equal(small[K.POS], full[K.POS]) and torch.equal(small[K.ATOMIC_NUMBERS], full[K.ATOMIC_NUMBERS])


def test_3ug2_aromatic_bond_order_4_and_hydrogens(pdbbind_dir):
    folder = pdbbind_dir / "3ug2"
    complex_ = read_pocket(folder / "3ug2_protein.pdb", folder / "3ug2_ligand.sdf")
    assert (complex_[K.BOND_TYPE] == K.BOND_AROMATIC).sum() == 17
    n_lig = complex_[K.INFO]["n_ligand_atoms"]
    assert (complex_[K.ATOMIC_NUMBERS][n_lig:] == 1).any()  # PDBbind receptor hydrogens kept by default
    assert complex_[K.INFO]["protein"]["excluded"] == {"waters": 15}
    heavy = read_pocket(folder / "3ug2_protein.pdb", folder / "3ug2_ligand.sdf", keep_hydrogens=False)
    assert not (heavy[K.ATOMIC_NUMBERS] == 1).any()
    assert heavy[K.INFO]["n_ligand_atoms"] == int((complex_[K.ATOMIC_NUMBERS][:n_lig] != 1).sum())
    assert heavy[K.BOND_INDEX].max() < heavy[K.INFO]["n_ligand_atoms"]
    with_water = read_protein(folder / "3ug2_protein.pdb", keep_waters=True)
    assert with_water[K.INFO]["residue_names"].count("HOH") == 15


def _write_toy_pdb(path: Path, extra: str = "") -> Path:
    lines = [
        "HEADER    TOY\n",
        _pdb_line("ATOM", 1, "N", "GLY", "A", 1, 0.0, 0.0, 0.0, "N"),
        _pdb_line("ATOM", 2, "CA", "GLY", "A", 1, 1.45, 0.0, 0.0, "C"),
        _pdb_line("ATOM", 3, "C", "GLY", "A", 1, 2.0, 1.4, 0.0, "C"),
        _pdb_line("ATOM", 4, "O", "GLY", "A", 1, 1.3, 2.4, 0.0, "O"),
        _pdb_line("ATOM", 5, "N", "SER", "A", 2, 3.3, 1.5, 0.0, "N"),
        _pdb_line("ATOM", 6, "CA", "SER", "A", 2, 4.0, 2.7, 0.0, "C"),
        _pdb_line("ATOM", 7, "OG", "SER", "A", 2, 5.0, 2.0, 1.0, "O", altloc="A", occ=0.4),
        _pdb_line("ATOM", 8, "OG", "SER", "A", 2, 5.0, 3.5, -1.0, "O", altloc="B", occ=0.6),
        _pdb_line("ATOM", 9, "H", "SER", "A", 2, 3.6, 0.6, 0.0, "H"),
        _pdb_line("HETATM", 10, "ZN", "ZN", "A", 101, 6.0, 6.0, 0.0, "ZN"),
        _pdb_line("HETATM", 11, "O", "HOH", "A", 201, 7.0, 0.0, 0.0, "O"),
        _pdb_line("HETATM", 12, "C1", "LIG", "A", 301, 3.0, 3.0, 3.0, "C"),
        _pdb_line("HETATM", 13, "SE", "MSE", "A", 3, 8.0, 8.0, 0.0, "SE"),
        "TER\n",
        extra,
        "END\n",
    ]
    path.write_text("".join(lines))
    return path


def test_toy_pdb_selection_rules(tmp_path):
    path = _write_toy_pdb(tmp_path / "toy.pdb")
    protein = read_protein(path)
    info = protein[K.INFO]
    assert info["residue_names"] == ["GLY"] * 4 + ["SER"] * 4 + ["MSE"]
    og = info["atom_names"].index("OG")
    assert protein[K.POS][og].tolist() == [5.0, 3.5, -1.0]  # altloc B has the higher occupancy
    assert info["excluded"] == {"alternate locations": 1, "ions": 1, "waters": 1, "HETATM LIG": 1}
    assert protein[K.RESIDUE_TYPE].tolist() == [AMINO_ACIDS.index("GLY")] * 4 + [AMINO_ACIDS.index("SER")] * 4 + [-1]
    assert protein[K.RESIDUE_INDEX].tolist() == [0] * 4 + [1] * 4 + [2]
    assert protein[K.IS_BACKBONE].tolist() == [True] * 4 + [True, True, False, False, False]
    assert bool(protein[K.FIXED].all()) and bool(protein[K.IS_PROTEIN].all())

    everything = read_protein(path, keep_ions=True, keep_waters=True, keep_hetero=["LIG"], keep_hydrogens=False)
    names = everything[K.INFO]["residue_names"]
    assert {"ZN", "HOH", "LIG"} <= set(names) and 1 not in everything[K.ATOMIC_NUMBERS].tolist()
    zinc = names.index("ZN")
    assert everything[K.ATOMIC_NUMBERS][zinc] == 30 and everything[K.RESIDUE_TYPE][zinc] == -1
    stripped = read_protein(path, ligand_residues=["SER"])
    assert "SER" not in stripped[K.INFO]["residue_names"]


def test_pocket_from_center_is_whole_residues(tmp_path):
    protein = read_protein(_write_toy_pdb(tmp_path / "toy.pdb"))
    pocket = pocket_from_center(protein, [0.0, 0.0, 0.0], radius=1.0)  # only GLY's N is that close
    assert pocket[K.INFO]["residue_names"] == ["GLY"] * 4 and pocket[K.RESIDUE_INDEX].tolist() == [0] * 4
    far = pocket_from_center(protein, [8.0, 8.0, 0.5], radius=1.0)
    assert far[K.INFO]["residue_names"] == ["MSE"] and far[K.RESIDUE_INDEX].tolist() == [0]
    with pytest.raises(ValueError, match="no receptor atom"):
        pocket_from_center(protein, [100.0, 0.0, 0.0], radius=5.0)


def test_pocket_from_ligand_on_receptor_record(crossdocked_dir):
    protein = read_protein(crossdocked_dir / POCKET_1H36)
    ligand = read_ligand(crossdocked_dir / LIG_1H36)
    small = pocket_from_ligand(protein, ligand, radius=4.0)
    assert _residue_keys(small) == _brute_force_pocket(protein, ligand[K.POS].numpy(), 4.0)
    assert small[K.RESIDUE_INDEX].max() + 1 == len(_residue_keys(small)) < 72


@pytest.mark.parametrize(
    "garbage, line, reason",
    [
        ("this line is garbage\n", 16, "not a PDB record"),
        (_pdb_line("ATOM", 99, "CB", "SER", "A", 2, 0, 0, 0, "C").replace("   0.000   0.000", "   x.abc   0.000"), 16,
         "unparseable coordinates"),
        (_pdb_line("HETATM", 99, "Q1", "LIG", "A", 5, 0, 0, 0, "QX"), 16, "unknown element symbol 'QX'"),
    ],
)
def test_bad_pdb_lines_name_file_and_line(tmp_path, garbage, line, reason):
    path = _write_toy_pdb(tmp_path / "bad.pdb", extra=garbage)
    with pytest.raises(InputError) as info:
        read_protein(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message and reason in message
    if reason == "not a PDB record":  # lenient mode ignores lines that are not records, never bad atoms
        assert read_protein(path, strict=False)[K.POS].shape[0] == 9


def test_mmcif_reads_like_the_pdb(tmp_path, crossdocked_dir):
    import gemmi

    toy = _write_toy_pdb(tmp_path / "toy.pdb")
    for pdb in (crossdocked_dir / POCKET_1H36, toy):
        structure = gemmi.read_structure(str(pdb))
        structure.setup_entities()
        cif = tmp_path / (pdb.stem + ".cif")
        structure.make_mmcif_document().write_file(str(cif))
        from_pdb, from_cif = read_protein(pdb), read_protein(cif)
        assert torch.allclose(from_pdb[K.POS], from_cif[K.POS])
        for key in (K.ATOMIC_NUMBERS, K.RESIDUE_TYPE, K.RESIDUE_INDEX, K.IS_BACKBONE):
            assert torch.equal(from_pdb[key], from_cif[key]), key
        for key in ("atom_names", "residue_names", "residue_numbers", "chain_ids", "excluded"):
            assert from_pdb[K.INFO][key] == from_cif[K.INFO][key], key
    pocket = read_pocket(tmp_path / (POCKET_1H36.rsplit(".", 1)[0] + ".cif"), crossdocked_dir / LIG_1H36)
    assert pocket[K.POS].shape[0] == 572 + 25


def _crossdocked_layout(root: Path, source: Path) -> tuple[str, str]:
    target = root / "1H36_HUMAN_1_300_0"
    target.mkdir(parents=True)
    shutil.copy(source / POCKET_1H36, target / POCKET_1H36)
    shutil.copy(source / LIG_1H36, target / LIG_1H36)
    return f"{target.name}/{POCKET_1H36}", f"{target.name}/{LIG_1H36}"


def test_crossdocked_index_and_split_layout(tmp_path, crossdocked_dir):
    root = tmp_path / "crossdocked_pocket10"
    pocket_fn, ligand_fn = _crossdocked_layout(root, crossdocked_dir)
    missing = ("GONE/x_pocket10.pdb", "GONE/x.sdf")
    index = [
        (pocket_fn, ligand_fn, "1H36_HUMAN_1_300_0/1h36_A_rec.pdb", 0.8),
        (None, "BAD/y.sdf", "BAD/y.pdb", 1.2),  # TargetDiff's index holds such failed crops
        (*missing, "GONE/x.pdb", 0.1),
    ]
    index_file = tmp_path / "index.pkl"
    index_file.write_bytes(pickle.dumps(index))
    assert load_crossdocked_index(index_file)[0] == index[0]

    split_file = tmp_path / "split_by_name.pt"
    torch.save({"train": [missing], "test": [(pocket_fn, ligand_fn)]}, split_file)
    assert load_crossdocked_split(split_file) == {"train": [missing], "test": [(pocket_fn, ligand_fn)]}

    policy = ReadPolicy("skip")
    records = list(iter_crossdocked(root, index_file=index_file, policy=policy))
    assert [r[K.NAME] for r in records] == [ligand_fn]
    assert records[0][K.POS].shape[0] == 572 + 25
    assert len(policy.skipped) == 2
    assert "without a pocket" in policy.skipped.entries[0].reason
    assert "complex GONE/x.sdf" in str(policy.skipped.entries[1])

    shutil.copy(index_file, root / "index.pkl")  # the index inside the root is found by default
    assert len(list(iter_crossdocked(root, policy=ReadPolicy("skip")))) == 1
    test = list(iter_crossdocked(root, split_file=split_file, split="test"))
    assert [r[K.NAME] for r in test] == [ligand_fn]
    with pytest.raises(InputError, match="complex GONE/x.sdf"):
        list(iter_crossdocked(root, index_file=index_file, split_file=split_file, split="train"))
    with pytest.raises(InputError, match="no split 'valid'"):
        list(iter_crossdocked(root, split_file=split_file, split="valid"))


class _Payload:
    """Stands for anything a hostile pickle could smuggle in."""


def test_index_and_split_files_refuse_objects(tmp_path):
    index_file = tmp_path / "index.pkl"
    index_file.write_bytes(pickle.dumps([("a", "b", "c", 1.0), _Payload()]))
    with pytest.raises(InputError, match="only plain lists"):
        load_crossdocked_index(index_file)
    split_file = tmp_path / "split_by_name.pt"
    torch.save({"test": [_Payload()]}, split_file)
    with pytest.raises(InputError, match="weights_only"):
        load_crossdocked_split(split_file)


def test_pdbbind_layout(tmp_path, pdbbind_dir, crossdocked_dir):
    root = tmp_path / "refined-set"
    shutil.copytree(pdbbind_dir / "3ug2", root / "3ug2")
    (root / "1h36").mkdir()
    shutil.copy(crossdocked_dir / POCKET_1H36, root / "1h36" / "1h36_protein.pdb")
    shutil.copy(crossdocked_dir / LIG_1H36, root / "1h36" / "1h36_ligand.sdf")
    (root / "9xyz").mkdir()
    shutil.copy(crossdocked_dir / POCKET_1H36, root / "9xyz" / "9xyz_protein.pdb")  # ligand missing
    (root / "index").mkdir()  # PDBbind's own index/ and readme/ folders are not complexes
    (root / "readme").mkdir()

    policy = ReadPolicy("skip")
    records = list(iter_pdbbind(root, policy=policy))
    assert [r[K.NAME] for r in records] == ["1h36", "3ug2"]
    assert records[1][K.INFO]["n_ligand_atoms"] == 56
    assert len(policy.skipped) == 1 and "complex 9xyz" in str(policy.skipped.entries[0])
    assert "9xyz_ligand.sdf" in policy.skipped.entries[0].reason
    with pytest.raises(InputError, match="complex 9xyz"):
        list(iter_pdbbind(root))

    # the optional <id>_pocket.pdb replaces the protein when asked for
    shutil.copy(root / "1h36" / "1h36_protein.pdb", root / "1h36" / "1h36_pocket.pdb")
    (root / "1h36" / "1h36_protein.pdb").write_text("garbage\n")
    (pocket,) = iter_pdbbind(root, use_pocket_file=True, ids=["1h36"])
    assert pocket[K.POS].shape[0] == 572 + 25
    with pytest.raises(InputError, match=r"complex 1h36.*line 1"):
        list(iter_pdbbind(root, ids=["1h36"]))
