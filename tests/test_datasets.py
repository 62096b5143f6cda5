"""Packed datasets: build once, reload from cache, splits, statistics, skip reports, batches."""

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import write

from molgen import keys as K
from molgen.data.datamodule import StructureDataModule
from molgen.data.datasets import open_dataset
from molgen.data.packed import PackedStructures, PackedWriter
from molgen.data.record import make_record
from molgen.data.splits import edm_qm9_split, random_split
from molgen.errors import InputError


def _molecules(n, rng):
    out = []
    for i in range(n):
        size = int(rng.integers(3, 9))
        numbers = rng.choice([1, 6, 7, 8], size=size)
        out.append(Atoms(numbers=numbers, positions=rng.normal(size=(size, 3)) * 2, info={"name": f"m{i}"}))
    return out


@pytest.fixture
def xyz_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mols"
    folder.mkdir()
    write(folder / "train.xyz", _molecules(30, rng), format="extxyz")
    write(folder / "val.xyz", _molecules(5, rng), format="extxyz")
    write(folder / "test.xyz", _molecules(6, rng), format="extxyz")
    return folder


def test_packed_round_trip_keeps_fields(tmp_path):
    records = [
        make_record([[0, 0, 0], [0, 0, 1.1]], [6, 8], formal_charges=[0, 0], bonds=[[0, 1]], bond_types=[3],
                    properties=[1.5], name="CO"),
        make_record([[0, 0, 0], [2.8, 2.8, 2.8]], [11, 17], cell=np.eye(3) * 5.6, name="NaCl", fixed=[True, False]),
    ]
    writer = PackedWriter(tmp_path / "p", shard_size=1)
    for r in records:
        writer.add(r)
    writer.close(meta={})
    packed = PackedStructures(tmp_path / "p")
    assert len(packed) == 2 and len(packed.meta["shards"]) == 2
    co, nacl = packed[0], packed[1]
    assert co[K.ATOMIC_NUMBERS].tolist() == [6, 8] and co[K.BOND_TYPE].tolist() == [3]
    assert co[K.BOND_INDEX].tolist() == [[0], [1]] and co[K.NAME] == "CO"
    assert torch.allclose(co[K.PROPERTIES], torch.tensor([[1.5]]))
    assert K.CELL not in co and K.CELL in nacl
    assert torch.allclose(nacl[K.FRAC_POS], torch.tensor([[0.0, 0, 0], [0.5, 0.5, 0.5]]))
    assert nacl[K.FIXED].tolist() == [True, False]
    assert K.PROPERTIES not in nacl  # missing per-structure values are not invented


def test_folder_dataset_uses_file_splits_and_caches(xyz_folder, tmp_path):
    dataset = open_dataset(xyz_folder, cache_dir=tmp_path / "cache")
    assert len(dataset) == 41
    assert {k: len(v) for k, v in dataset.splits.items()} == {"train": 30, "valid": 5, "test": 6}
    assert dataset.statistics.n_structures == 41 and dataset.train_statistics.n_structures == 30
    assert set(dataset.statistics.elements) <= {1, 6, 7, 8}
    sizes = [dataset[i][K.POS].shape[0] for i in range(len(dataset))]
    assert sum(dataset.statistics.n_atoms_histogram.values()) == 41
    assert dataset.statistics.n_atoms_mean == pytest.approx(np.mean(sizes))
    meta_mtime = (dataset.folder / "meta.json").stat().st_mtime_ns
    again = open_dataset(xyz_folder, cache_dir=tmp_path / "cache")
    assert (again.folder / "meta.json").stat().st_mtime_ns == meta_mtime  # served from cache
    assert torch.equal(again[7][K.POS], dataset[7][K.POS])


def test_changed_file_invalidates_cache(xyz_folder, tmp_path):
    first = open_dataset(xyz_folder / "train.xyz", cache_dir=tmp_path / "cache")
    write(xyz_folder / "train.xyz", _molecules(12, np.random.default_rng(1)), format="extxyz")
    second = open_dataset(xyz_folder / "train.xyz", cache_dir=tmp_path / "cache")
    assert len(first) == 30 and len(second) == 12


def test_bad_records_raise_or_are_reported(tmp_path):
    good = "2\nname=a\nC 0 0 0\nO 0 0 1.1\n"
    bad = "2\nname=b\nC 0 0 0\nQq 0 0 1.1\n"
    path = tmp_path / "mixed.xyz"
    path.write_text(good + bad + good)
    with pytest.raises(InputError) as error:
        open_dataset(path, cache_dir=tmp_path / "c1")
    assert "mixed.xyz" in str(error.value)
    dataset = open_dataset(path, cache_dir=tmp_path / "c2", on_error="skip", verbose=False)
    assert len(dataset) == 2
    assert dataset.skipped["count"] == 1 and dataset.skipped["examples"]


def test_splits_are_deterministic_and_disjoint():
    split = edm_qm9_split()
    assert [len(split[k]) for k in ("train", "valid", "test")] == [100_000, 17_748, 13_083]
    joined = np.concatenate(list(split.values()))
    assert len(np.unique(joined)) == 130_831
    assert all(np.array_equal(edm_qm9_split()[k], split[k]) for k in split)
    a, b = random_split(100, seed=3), random_split(100, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_datamodule_batches(xyz_folder, tmp_path):
    dm = StructureDataModule(xyz_folder, batch_size=8, cache_dir=tmp_path / "cache")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.num_graphs == 8
    assert batch[K.POS].dtype == torch.float32 and batch[K.POS].shape[1] == 3
    assert batch[K.FORMAL_CHARGES].shape == batch[K.ATOMIC_NUMBERS].shape
    assert batch.batch.max() == 7
    assert dm.statistics.n_structures == 30


def test_data_stats_cli(xyz_folder, tmp_path, capsys):
    from molgen.cli.main import main

    out = tmp_path / "stats.json"
    assert main(["data", "stats", str(xyz_folder / "val.xyz"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_structures"] == 5
    assert set(report["elements"]) <= {"H", "C", "N", "O"}
    assert "atoms per structure" in capsys.readouterr().out


def test_data_stats_cli_reports_bad_file_without_traceback(tmp_path, capsys):
    from molgen.cli.main import main

    path = tmp_path / "truncated.xyz"
    path.write_text("3\ncomment\nC 0 0 0\nO 0 0 1.1\n")
    assert main(["data", "stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert "truncated.xyz" in err and "Traceback" not in err


def test_pdbbind_layout_dataset(tmp_path, shared_data):
    import shutil

    root = tmp_path / "refined-set"
    for pdb_id, folder in (("3ug2", "pdbbind_3ug2"), ("1h36", "crossdocked_1h36")):
        (root / pdb_id).mkdir(parents=True)
        source = shared_data / "proteins" / folder
        protein = next(source.glob("*.pdb"))
        ligand = next(source.glob("*.sdf"))
        shutil.copy(protein, root / pdb_id / f"{pdb_id}_protein.pdb")
        shutil.copy(ligand, root / pdb_id / f"{pdb_id}_ligand.sdf")
    dataset = open_dataset(f"pdbbind:{root}", cache_dir=tmp_path / "cache")
    assert len(dataset) == 2
    complex_ = dataset[0]
    assert complex_[K.FIXED].any() and not complex_[K.FIXED].all()
    assert torch.equal(complex_[K.FIXED], complex_[K.IS_PROTEIN])
    assert (complex_[K.RESIDUE_TYPE][complex_[K.IS_PROTEIN]] >= -1).all()
    dm = StructureDataModule(f"pdbbind:{root}", batch_size=2, cache_dir=tmp_path / "cache")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch[K.FIXED].dtype == torch.bool and K.IS_PROTEIN in batch


def test_packed_copy_opens_as_a_source_without_the_original(xyz_folder, tmp_path, capsys):
    from molgen.cli.main import main
    from molgen.errors import MolgenError

    copy = tmp_path / "packed"
    assert main(["data", "build", str(xyz_folder), "--cache-dir", str(tmp_path / "cache"),
                 "--output", str(copy)]) == 0
    assert "packed copy" in capsys.readouterr().out
    original = open_dataset(xyz_folder, cache_dir=tmp_path / "cache")
    for file in xyz_folder.iterdir():  # the copy needs neither the source files nor a cache
        file.unlink()
    opened = open_dataset(copy, cache_dir=tmp_path / "other-cache")
    assert opened.folder == copy and len(opened) == len(original) == 41
    assert {k: v.tolist() for k, v in opened.splits.items()} == {k: v.tolist() for k, v in original.splits.items()}
    assert opened.train_statistics.to_dict() == original.train_statistics.to_dict()
    assert torch.equal(opened[11][K.POS], original[11][K.POS]) and torch.equal(opened[11][K.ATOMIC_NUMBERS], original[11][K.ATOMIC_NUMBERS])
    assert not (tmp_path / "other-cache").exists()
    with pytest.raises(MolgenError, match="not empty"):
        from molgen.data.datasets import export_dataset

        export_dataset(original, copy)
