"""QM9 readers: qm9pack CSV (bundled sample and full package), raw dsgdb9nsd xyz, EDM npz, EDM split."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from molgen import keys as K
from molgen.data.readers import ReadPolicy, read_all
from molgen.data.readers import qm9
from molgen.errors import InputError, MissingDependencyError

FIXTURES = Path(__file__).parent / "fixtures" / "molecules"
HA = qm9.HARTREE_TO_EV


@pytest.fixture(scope="module")
def sample_path() -> Path:
    return Path(__file__).resolve().parents[1] / "data" / "qm9" / "qm9_sample.csv.gz"


@pytest.fixture(scope="module")
def sample(sample_path):
    return read_all(sample_path)


def test_twelve_standard_properties_and_units():
    assert qm9.QM9_PROPERTY_NAMES == ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
    units = dict(zip(qm9.QM9_PROPERTY_NAMES, qm9.QM9_PROPERTY_UNITS))
    assert units["mu"] == "D" and units["alpha"] == "bohr^3" and units["r2"] == "bohr^2" and units["Cv"] == "cal/(mol K)"
    assert all(units[p] == "eV" for p in ("homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"))


def test_bundled_sample_reads_1000_molecules(sample):
    assert len(sample) == 1000
    assert all(r[K.PROPERTIES].shape == (1, 12) for r in sample)
    elements = torch.unique(torch.cat([r[K.ATOMIC_NUMBERS] for r in sample])).tolist()
    assert set(elements) <= {1, 6, 7, 8, 9}
    sizes = [r[K.POS].shape[0] for r in sample]
    assert 3 <= min(sizes) and max(sizes) <= 29
    first = sample[0]
    assert first[K.NAME] == f"gdb_{first[K.INFO]['gdb_index']}" and first[K.INFO]["smiles"]
    indices = [r[K.INFO]["gdb_index"] for r in sample]
    assert indices == sorted(indices) and len(set(indices)) == 1000
    gap = torch.cat([r[K.PROPERTIES] for r in sample])[:, 4]
    assert 2.0 < float(gap.mean()) < 12.0  # eV (QM9's mean gap is about 6.9 eV)


@pytest.mark.slow
def test_sample_is_the_first_1000_of_the_edm_train_split(sample):
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    train = qm9.edm_split_indices()["train"][:1000]
    # gdb indices skip the 3,054 uncharacterized molecules: compare through qm9pack row order
    gdb_index = qm9.load_qm9pack_arrays().gdb_index
    assert [r[K.INFO]["gdb_index"] for r in sample] == sorted(gdb_index[train].tolist())


def test_bulk_loader_matches_the_record_reader(sample, sample_path):
    arrays = qm9.load_qm9pack_arrays([sample_path])
    assert len(arrays) == 1000 and arrays.positions.shape == (int(arrays.sizes.sum()), 3)
    assert arrays.properties.shape == (1000, 12) and arrays.properties.dtype == np.float32
    assert arrays.offsets[-1] == arrays.positions.shape[0]
    assert np.allclose(arrays.positions, np.concatenate([r[K.POS].numpy() for r in sample]), atol=1e-6)
    assert np.array_equal(arrays.atomic_numbers, np.concatenate([r[K.ATOMIC_NUMBERS].numpy() for r in sample]))
    assert np.array_equal(arrays.properties, torch.cat([r[K.PROPERTIES] for r in sample]).numpy())
    assert arrays.smiles[0] == sample[0][K.INFO]["smiles"]


def _write_sample_rows(sample_path: Path, out: Path, n: int, edit=None) -> None:
    lines = gzip.decompress(sample_path.read_bytes()).decode().splitlines(keepends=True)[: n + 1]
    text = "".join(lines)
    out.write_text(edit(text) if edit else text)


def test_bad_qm9pack_rows_name_row_and_file(tmp_path, sample_path):
    bad = tmp_path / "bad.csv"
    _write_sample_rows(sample_path, bad, 5, edit=lambda t: t.replace("['C','C',", "['C','Xx',", 1))
    with pytest.raises(InputError, match=r"bad.csv, record 1 \(dsgdb9nsd_000294.xyz\): unknown element symbol 'Xx'"):
        read_all(bad)
    with pytest.raises(InputError, match=r"record 1 \(dsgdb9nsd_000294.xyz\): unknown element symbol 'Xx'"):
        qm9.load_qm9pack_arrays([bad])
    # one coordinate triple dropped from the second row: wrong atom count
    lines = bad.read_text().replace("'Xx'", "'C'").splitlines(keepends=True)
    head, row = lines[2].split('"[[', 1)
    lines[2] = head + '"[[' + row.split("],[", 1)[1]
    bad.write_text("".join(lines))
    policy = ReadPolicy("skip")
    records = read_all(bad, policy)
    assert len(records) == 4 and len(policy.skipped) == 1
    (error,) = policy.skipped.entries
    assert error.record.startswith("2 (dsgdb9nsd_") and "wrong atom count" in error.reason
    with pytest.raises(InputError, match=r"record 2 \(dsgdb9nsd_\d+.xyz\): wrong atom count"):
        qm9.load_qm9pack_arrays([bad])


def test_raw_dsgdb9nsd_xyz_with_mathematica_exponent():
    (record,) = read_all(FIXTURES / "dsgdb9nsd_000212.xyz")
    assert record[K.NAME] == "gdb_212"
    assert record[K.ATOMIC_NUMBERS].tolist() == [6, 7, 6, 6, 6, 6] + [1] * 7
    assert record[K.POS][0].tolist() == pytest.approx([2.1997e-6, 1.4462618059, 0.0098312216])
    y = record[K.PROPERTIES][0].double()
    expected = [2.0318, 55.54, -0.2006 * HA, 0.0463 * HA, 0.2469 * HA, 510.1975, 0.110002 * HA,
                -249.387499 * HA, -249.381908 * HA, -249.380963 * HA, -249.416542 * HA, 20.193]
    assert y.tolist() == pytest.approx(expected, rel=1e-6)
    info = record[K.INFO]
    assert info["gdb_index"] == 212 and info["smiles"] == "CN1C=CC=C1" and info["inchi"].startswith("InChI=1S/C5H7N")
    assert info["rotational_constants_ghz"] == pytest.approx([8.71953, 3.56689, 2.57362])
    assert len(info["mulliken_charges"]) == 13


def test_raw_qm9_bad_files(tmp_path):
    text = (FIXTURES / "dsgdb9nsd_000212.xyz").read_text()
    cut = tmp_path / "dsgdb9nsd_000212.xyz"
    cut.write_text("".join(text.splitlines(keepends=True)[:8]))
    with pytest.raises(InputError, match=r"record dsgdb9nsd_000212: truncated raw QM9 file: atom count is 13 but only 6"):
        read_all(cut)
    cut.write_text(text.replace("\n0.0029673515", "\nnan", 1).replace("C\t0.0029673515", "C\tnan"))
    with pytest.raises(InputError, match="atom 6 has a non-finite coordinate"):
        read_all(cut)


def _edm_npz(path: Path, records, with_props=qm9.QM9_PROPERTY_NAMES) -> None:
    """Write records in EDM's padded npz layout, properties back in QM9's units (Hartree)."""
    n, max_atoms = len(records), max(r[K.POS].shape[0] for r in records)
    positions = np.zeros((n, max_atoms, 3))
    charges = np.zeros((n, max_atoms), dtype=np.int64)
    for i, r in enumerate(records):
        k = r[K.POS].shape[0]
        positions[i, :k] = r[K.POS].numpy()
        charges[i, :k] = r[K.ATOMIC_NUMBERS].numpy()
    table = torch.cat([r[K.PROPERTIES] for r in records]).double().numpy()
    factors = np.array([p.factor for p in qm9.QM9_PROPERTIES])
    props = {name: table[:, j] / factors[j] for j, name in enumerate(qm9.QM9_PROPERTY_NAMES) if name in with_props}
    np.savez(path, positions=positions, charges=charges, num_atoms=np.array([r[K.POS].shape[0] for r in records]),
             index=np.array([r[K.INFO]["gdb_index"] for r in records]), **props)


def test_edm_npz_layout(tmp_path, sample):
    path = tmp_path / "train.npz"
    _edm_npz(path, sample[:20])
    records = read_all(path)
    assert len(records) == 20
    for a, b in zip(records, sample[:20]):
        assert a[K.NAME] == b[K.NAME]
        assert torch.equal(a[K.ATOMIC_NUMBERS], b[K.ATOMIC_NUMBERS])
        assert torch.allclose(a[K.POS], b[K.POS])
        assert torch.allclose(a[K.PROPERTIES], b[K.PROPERTIES], rtol=1e-5)
    partial = tmp_path / "partial.npz"
    _edm_npz(partial, sample[:3], with_props=("gap", "mu"))
    first = read_all(partial)[0]
    assert first[K.INFO]["property_names"] == ["mu", "gap"]
    assert first[K.PROPERTIES][0].tolist() == pytest.approx(sample[0][K.PROPERTIES][0, [0, 4]].tolist(), rel=1e-5)


def test_edm_npz_bad_rows(tmp_path, sample):
    path = tmp_path / "bad.npz"
    _edm_npz(path, sample[:4])
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["num_atoms"][2] += 1
    np.savez(path, **arrays)
    policy = ReadPolicy("skip")
    assert len(read_all(path, policy)) == 3
    (error,) = policy.skipped.entries
    assert error.record == 2 and "wrong atom count" in error.reason and str(path) in str(error)
    del arrays["charges"]
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="missing array\\(s\\) charges"):
        read_all(path)


def test_edm_split_sizes_and_definition():
    splits = qm9.edm_split_indices()
    assert {k: len(v) for k, v in splits.items()} == {"train": 100_000, "valid": 17_748, "test": 13_083}
    everything = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(everything), np.arange(130_831))
    state = np.random.get_state()
    np.random.seed(0)
    perm = np.random.permutation(130_831)
    np.random.set_state(state)
    assert np.array_equal(splits["train"], perm[:100_000]) and np.array_equal(splits["test"], perm[117_748:])


def test_missing_qm9pack_says_what_to_install(monkeypatch):
    monkeypatch.setattr(qm9.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r'pip install "molgen\[qm9\]"'):
        qm9.qm9pack_files()


@pytest.mark.slow
def test_full_qm9pack_loads_130831_molecules():
    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    arrays = qm9.load_qm9pack_arrays()
    assert len(arrays) == qm9.N_QM9 == 130_831
    assert arrays.positions.shape == (2_359_210, 3) and int(arrays.sizes.max()) == 29
    assert np.all(np.diff(arrays.gdb_index) > 0) and arrays.gdb_index[0] == 1 and arrays.gdb_index[-1] == 133_885
    assert np.isfinite(arrays.properties).all()
    assert set(np.unique(arrays.atomic_numbers).tolist()) == {1, 6, 7, 8, 9}
