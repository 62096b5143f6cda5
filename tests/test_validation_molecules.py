"""Molecule metrics: EDM protocol (hand-made cases and a loop-by-loop port of EDM's procedure), charged protocol,
novelty, broken inputs, distributions, rdDetermineBonds with its time cap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molgen.validation.bonds import EDM_ALLOWED_BONDS, EDM_BONDS1, EDM_BONDS2, EDM_BONDS3, EDM_ELEMENT_ORDER
from molgen.validation.molecule_metrics import Molecule, evaluate_molecules, reference_smiles_of

FIXTURES = Path(__file__).parent / "fixtures" / "validation"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "qm9" / "qm9_sample.csv.gz"

WATER = Molecule(np.array([8, 1, 1]), np.array([[0.0, 0, 0], [0.957, 0, 0], [-0.240, 0.927, 0]]), name="water")
METHANE = Molecule(
    np.array([6, 1, 1, 1, 1]),
    np.array([[0.0, 0, 0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629], [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]]),
    name="methane",
)
# methane with one hydrogen pulled 3 Å away: C has valence 3, the far H valence 0
BROKEN = Molecule(METHANE.z.copy(), METHANE.pos * np.array([[1], [1], [1], [1], [5.0]]), name="broken methane")


def test_hand_computed_set():
    report = evaluate_molecules([WATER, METHANE, BROKEN], "edm", workers=1)
    m = report.metrics
    assert m["n"] == 3
    assert m["atom_stability"] == pytest.approx(11 / 13)  # 3 + 5 + 3 stable atoms of 13
    assert m["mol_stability"] == pytest.approx(2 / 3)
    # RDKit allows implicit hydrogens (as EDM does): CH3 + H sanitizes, its largest fragment is CH3(+implicit H)
    assert m["validity"] == 1.0
    assert m["connectivity"] == pytest.approx(2 / 3)
    assert m["uniqueness"] == 1.0 and m["valid_and_unique"] == 1.0
    assert [r["smiles"] for r in report.rows] == ["[H]O[H]", "[H]C([H])([H])[H]", "[H]C([H])[H]"]
    assert "unstable" in report.rows[2]["reason"] and "2 fragments" in report.rows[2]["reason"]
    assert report.rows[0]["reason"] == ""


def test_duplicates_and_novelty():
    shifted = Molecule(WATER.z, WATER.pos + 3.0, name="water again")
    reference = reference_smiles_of([WATER], "edm", workers=1)
    assert reference == {"[H]O[H]"}
    report = evaluate_molecules([WATER, METHANE, shifted], "edm", reference_smiles=reference, workers=1)
    assert report.metrics["uniqueness"] == pytest.approx(2 / 3)
    assert report.metrics["valid_and_unique"] == pytest.approx(2 / 3)
    assert report.metrics["novelty"] == pytest.approx(1 / 2)  # methane is new, water is not
    assert report.rows[2]["duplicate"] and "duplicate" in report.rows[2]["reason"]


def _edm_port(z: np.ndarray, pos: np.ndarray) -> tuple[bool, int, str | None]:
    """EDM's QM9 evaluation written out loop by loop (qm9/analyze.py check_stability, rdkit_functions.py)."""
    symbols = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
    atoms = [symbols[int(v)] for v in z]
    p = np.asarray(pos, dtype=np.float32)

    def order(a, b, d):
        d = np.float32(d) * np.float32(100)
        if d < EDM_BONDS1[a][b] + 10:
            if a in EDM_BONDS2 and b in EDM_BONDS2[a] and d < EDM_BONDS2[a][b] + 5:
                if a in EDM_BONDS3 and b in EDM_BONDS3[a] and d < EDM_BONDS3[a][b] + 3:
                    return 3
                return 2
            return 1
        return 0

    n = len(atoms)
    counts = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            d = np.sqrt(np.sum((p[i] - p[j]) ** 2))
            o = order(atoms[i], atoms[j], d)
            counts[i] += o
            counts[j] += o
    stable = sum(int(counts[i] == EDM_ALLOWED_BONDS[atoms[i]]) for i in range(n))
    mol = Chem.RWMol()
    for a in atoms:
        mol.AddAtom(Chem.Atom(a))
    types = [None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE]
    for i in range(n):
        for j in range(i):
            first, second = sorted([atoms[i], atoms[j]], key=EDM_ELEMENT_ORDER.index)
            o = order(first, second, np.sqrt(np.sum((p[i] - p[j]) ** 2)))
            if o:
                mol.AddBond(i, j, types[o])
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return stable == n, stable, None
    fragments = Chem.GetMolFrags(mol, asMols=True)
    largest = max(fragments, default=mol, key=lambda m: m.GetNumAtoms())
    Chem.SanitizeMol(largest)
    return stable == n, stable, Chem.MolToSmiles(largest)


def _sample(limit: int | None = None) -> list[Molecule]:
    if not SAMPLE.exists():
        pytest.skip("bundled QM9 sample not present")
    from molgen.data.readers.qm9 import load_qm9pack_arrays

    arrays = load_qm9pack_arrays([SAMPLE])
    off = arrays.offsets
    count = len(arrays) if limit is None else min(limit, len(arrays))
    return [Molecule(arrays.atomic_numbers[off[i]:off[i + 1]].astype(np.int64), arrays.positions[off[i]:off[i + 1]])
            for i in range(count)]


def test_matches_loop_port_of_edm_on_qm9_sample():
    molecules = _sample(400)
    report = evaluate_molecules(molecules, "edm", workers=2)
    for molecule, row in zip(molecules, report.rows):
        mol_stable, stable_atoms, smiles = _edm_port(molecule.z, molecule.pos)
        assert row["mol_stable"] == mol_stable and row["stable_atoms"] == stable_atoms
        assert row["valid"] == (smiles is not None)
        if smiles is not None:
            assert row["smiles"] == smiles


def test_bundled_sample_figures():
    """The figures stated in benchmarks/validation.md for data/qm9/qm9_sample.csv.gz (1,000 molecules)."""
    report = evaluate_molecules(_sample(), "edm", workers=2)
    m = report.metrics
    assert m["n"] == 1000
    assert (round(m["atom_stability"], 5), m["mol_stability"], m["validity"], m["uniqueness"]) == (0.99474, 0.958, 0.986, 1.0)


def test_charged_protocol():
    ammonium = Molecule(
        np.array([7, 1, 1, 1, 1]),
        np.array([[0.0, 0, 0], [0.59, 0.59, 0.59], [-0.59, -0.59, 0.59], [-0.59, 0.59, -0.59], [0.59, -0.59, -0.59]]),
    )
    with_charge = Molecule(ammonium.z, ammonium.pos, charges=np.array([1, 0, 0, 0, 0]))
    edm = evaluate_molecules([ammonium], "edm", workers=1)
    assert edm.metrics["mol_stability"] == 0.0  # N with 4 bonds is not allowed without charges
    charged = evaluate_molecules([ammonium, with_charge], "charged", workers=1)
    assert charged.metrics["atom_stability"] == 1.0 and charged.metrics["validity"] == 1.0
    assert {r["smiles"] for r in charged.rows} == {"[H][N+]([H])([H])[H]"}
    # without charges in the input the implied N+ must be balanced: a lone ammonium is not a neutral molecule
    assert [r["mol_stable"] for r in charged.rows] == [False, True]
    assert "cannot sum to zero" in charged.rows[0]["reason"]
    wrong = Molecule(ammonium.z, ammonium.pos, charges=np.array([0, 0, 0, 0, 0]))
    assert evaluate_molecules([wrong], "charged", workers=1).metrics["mol_stability"] == 0.0


def test_charged_protocol_uses_file_bonds_and_kekulizes_aromatic_ones():
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccc2ncccc2c1"))  # quinoline: fused carbons have three aromatic bonds
    AllChem.EmbedMolecule(mol, randomSeed=0)
    bonds = np.array([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()])
    codes = np.array([4 if b.GetIsAromatic() else int(b.GetBondTypeAsDouble()) for b in mol.GetBonds()])
    molecule = Molecule(np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions(),
                        charges=np.zeros(mol.GetNumAtoms(), dtype=int), bonds=bonds, bond_types=codes)
    report = evaluate_molecules([molecule], "charged", workers=1)
    assert report.metrics["atom_stability"] == 1.0 and report.metrics["validity"] == 1.0


def test_broken_file_is_reported_per_structure(tmp_path):
    from molgen.cli.main import main

    out, per = tmp_path / "m.json", tmp_path / "rows.csv"
    assert main(["validate", str(FIXTURES / "broken.xyz"), "--json", str(out), "--csv", str(per)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 6 and metrics["n_unreadable"] == 3
    assert metrics["validity"] == pytest.approx(3 / 6)  # water, methane, and the overlapping pair (EDM counts it)
    assert metrics["atoms_overlapping"] == 1
    text = per.read_text()
    for reason in ("unknown element symbol 'Xx'", "non-finite coordinate", "unreadable coordinates",
                   "atoms on top of each other"):
        assert reason in text
    # the charged protocol is not bound to EDM's rules and fails coinciding atoms
    assert main(["validate", str(FIXTURES / "broken.xyz"), "--protocol", "charged", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["validity"] == pytest.approx(2 / 6)


def test_cli_json_keys_reference_and_plots(tmp_path):
    from molgen.cli.main import main

    if not SAMPLE.exists():
        pytest.skip("bundled QM9 sample not present")
    xyz = tmp_path / "two.xyz"
    xyz.write_text("3\nwater\nO 0 0 0\nH 0.957 0 0\nH -0.24 0.927 0\n"
                   "5\nmethane\nC 0 0 0\nH 0.629 0.629 0.629\nH -0.629 -0.629 0.629\nH -0.629 0.629 -0.629\n"
                   "H 0.629 -0.629 -0.629\n")
    ref = tmp_path / "ref.xyz"
    ref.write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    out = tmp_path / "m.json"
    code = main(["validate", str(xyz), "--reference", str(ref), "--json", str(out), "--plots", str(tmp_path / "plots"),
                 "--cache-dir", str(tmp_path / "cache"), "--workers", "1"])
    assert code == 0
    metrics = json.loads(out.read_text())
    for key in ("n", "atom_stability", "mol_stability", "validity", "connectivity", "uniqueness", "valid_and_unique",
                "novelty", "atom_type_tv", "size_tv", "bond_length_w1", "bond_angle_w1"):
        assert key in metrics
    assert metrics["novelty"] == 0.5
    # generated: O 1/8, H 6/8, C 1/8; reference: O 1/3, H 2/3
    assert metrics["atom_type_tv"] == pytest.approx(0.5 * (abs(1 / 8 - 1 / 3) + abs(6 / 8 - 2 / 3) + 1 / 8), abs=1e-9)
    assert metrics["size_tv"] == 0.5 and metrics["size_w1"] == 1.0  # sizes {3, 5} vs {3}
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("atom_stability", "validity", "uniqueness", "novelty"))
    assert (tmp_path / "plots" / "atom_types.png").exists()
    assert list((tmp_path / "cache" / "validation").glob("reference-*.json.gz"))  # cached for next time


def test_rdkit_bonds_and_time_cap():
    from molgen.validation.rdkit_bonds import determine_bonds_many

    ok, capped = determine_bonds_many([WATER, METHANE], timeout=30.0, workers=1)[0], None
    assert ok.error is None and sorted(map(tuple, ok.pairs.tolist())) == [(0, 1), (0, 2)]
    capped = determine_bonds_many([METHANE], timeout=1e-6, workers=1)[0]
    assert capped.error is not None and "timed out" in capped.error
    report = evaluate_molecules([METHANE], _protocol("charged", "rdkit"), rdkit_timeout=1e-6, workers=1)
    assert report.metrics["validity"] == 0.0 and "timed out" in report.rows[0]["reason"]
    report = evaluate_molecules([WATER, METHANE], _protocol("charged", "rdkit"), workers=1)
    assert report.metrics["mol_stability"] == 1.0


def _protocol(name, bonds):
    from molgen.validation.protocols import get_protocol

    return get_protocol(name, bonds)


def test_distribution_distances_are_zero_against_itself_and_positive_otherwise():
    from molgen.validation.distributions import compare, molecule_stats
    from molgen.validation.molecule_metrics import perceive
    from molgen.validation.protocols import get_protocol

    molecules = _sample(200)
    bonds = perceive(molecules, get_protocol("edm")).bonds
    stats = molecule_stats([m.z for m in molecules], [m.pos for m in molecules], bonds)
    same = compare(stats, stats)
    assert same["atom_type_tv"] == 0 and same["bond_length_w1"] == 0 and same["bond_angle_w1"] == 0
    stretched = molecule_stats([m.z for m in molecules], [m.pos * 1.01 for m in molecules], bonds)
    diff = compare(stretched, stats)
    # every C-H bond is 1 % longer: the Wasserstein-1 distance is the mean shift, about 0.011 Å
    assert diff["bond_length_w1_by_type"]["C-H"] == pytest.approx(0.011, abs=0.002)
    assert diff["bond_angle_w1"] < 0.5  # uniform scaling keeps angles
    # ... and barely changes the spread (lengths 1 % longer: IQR 1 % wider), which the same set has exactly
    assert same["bond_length_spread"] == pytest.approx(1.0)
    assert diff["bond_length_spread"] == pytest.approx(1.01, abs=0.02)
    # smeared positions (0.02 Å per coordinate) leave the centres and widen every bond type
    rng = np.random.default_rng(0)
    smeared = molecule_stats([m.z for m in molecules], [m.pos + 0.02 * rng.standard_normal(m.pos.shape)
                                                       for m in molecules], bonds)
    wide = compare(smeared, stats)
    by_type = wide["bond_length_spread_by_type"]
    assert wide["bond_length_spread"] > 1.5 and all(by_type[k] > 1.5 for k in ("C-H", "H-N", "H-O"))


def test_histogram_quantiles_interpolate_inside_bins():
    from molgen.validation.distributions import histogram_quantile, interquartile_range

    bins = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    h = np.array([0, 2, 2, 0])  # uniform on [1, 3]
    assert histogram_quantile(h, bins, 0.5) == pytest.approx(2.0)
    assert interquartile_range(h, bins) == pytest.approx(1.0)
    assert np.isnan(histogram_quantile(np.zeros(4), bins, 0.5))


@pytest.mark.slow
def test_full_qm9_matches_edm_figures():
    """EDM's own code on the 130,831 qm9pack molecules: atom 99.36 %, molecule 95.28 %, validity 97.68 %,
    uniqueness 99.95 %. Must agree within 0.1 percentage point."""
    import importlib.util

    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    from molgen.data.readers.qm9 import load_qm9pack_arrays

    arrays = load_qm9pack_arrays()
    off = arrays.offsets
    molecules = [Molecule(arrays.atomic_numbers[off[i]:off[i + 1]].astype(np.int64), arrays.positions[off[i]:off[i + 1]])
                 for i in range(len(arrays))]
    m = evaluate_molecules(molecules, "edm").metrics
    assert m["n"] == 130831
    assert abs(100 * m["atom_stability"] - 99.36) < 0.1
    assert abs(100 * m["mol_stability"] - 95.28) < 0.1
    assert abs(100 * m["validity"] - 97.68) < 0.1
    assert abs(100 * m["uniqueness"] - 99.95) < 0.1


def test_input_with_only_broken_records(tmp_path):
    from molgen.cli.main import main

    xyz = tmp_path / "bad.xyz"
    xyz.write_text("2\nnot an element\nQq 0 0 0\nH 1 0 0\n")
    out = tmp_path / "m.json"
    assert main(["validate", str(xyz), "--kind", "molecule", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 1 and metrics["n_unreadable"] == 1 and metrics["validity"] == 0.0


def test_validation_does_not_import_model_code(tmp_path):
    import subprocess
    import sys

    xyz = tmp_path / "w.xyz"
    xyz.write_text("3\nwater\nO 0 0 0\nH 0.957 0 0\nH -0.24 0.927 0\n")
    code = (
        "import sys\n"
        "from molgen.cli.main import main\n"
        f"assert main(['validate', {str(xyz)!r}, '--workers', '1']) == 0\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'e3nn') or "
        "m.startswith(('molgen.model', 'molgen.diffusion', 'molgen.training', 'molgen.sampling'))]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_edm_geom_builds_single_bonds_for_validity():
    ethene = Molecule(np.array([6, 6, 1, 1, 1, 1]), np.array(
        [[0, 0, 0], [1.33, 0, 0], [-0.55, 0.93, 0], [-0.55, -0.93, 0], [1.88, 0.93, 0], [1.88, -0.93, 0]], dtype=float))
    edm = evaluate_molecules([ethene], "edm", workers=1)
    geom = evaluate_molecules([ethene], "edm-geom", workers=1)
    assert edm.metrics["mol_stability"] == geom.metrics["mol_stability"] == 1.0  # stability uses bond orders in both
    assert edm.rows[0]["smiles"] == "[H]C([H])=C([H])[H]"
    assert geom.rows[0]["smiles"] == "[H]C([H])C([H])[H]"  # single bonds; RDKit adds implicit hydrogens


def test_non_finite_coordinates_fail_every_check():
    """A structure with NaN coordinates is a failure, not a one-atom 'valid' molecule."""
    import numpy as np

    from molgen.validation.molecule_metrics import Molecule, evaluate_molecules

    water = Molecule(z=np.array([8, 1, 1]), pos=np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]))
    broken = Molecule(z=np.array([6, 1]), pos=np.full((2, 3), np.nan), name="broken")
    report = evaluate_molecules([water, broken], "edm", workers=1)
    assert report.metrics["n"] == 2 and report.metrics["n_unreadable"] == 1
    assert report.metrics["validity"] == 0.5 and report.metrics["atom_stability"] == 1.0
    assert any("non-finite" in str(row) for row in report.rows)


def test_implied_charges_must_balance():
    from molgen.validation.protocols import charges_can_sum_to, get_protocol

    charged = get_protocol("charged")
    assert charged.charge_options("C", 3) == (-1, 1) and charged.charge_options("N", 4) == (1,)
    assert charged.charge_options("C", 4) == (0,) and charged.charge_options("C", 2.5) == ()
    assert charges_can_sum_to([(0,), (1,), (-1,)]) and charges_can_sum_to([(-1, 1), (-1, 1)])
    assert not charges_can_sum_to([(-1, 1)]) and not charges_can_sum_to([(1,), (0,)])
    assert charges_can_sum_to([(1,)], total=1) and charges_can_sum_to([()])  # no option: judged elsewhere
    # a methyl radical from coordinates: C has three bonds (C+ or C-), no partner to balance it
    methyl = Molecule(np.array([6, 1, 1, 1]),
                      np.array([[0.0, 0, 0], [1.08, 0, 0], [-0.54, 0.935, 0], [-0.54, -0.935, 0]]))
    report = evaluate_molecules([methyl], "charged", workers=1)
    assert report.metrics["atom_stability"] == 1.0 and report.metrics["mol_stability"] == 0.0
    assert evaluate_molecules([methyl], "edm", workers=1).metrics["atom_stability"] == 0.75
