"""EDM bond tables and distance-based bond orders."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.validation.bonds import (
    EDM_ALLOWED_BONDS, EDM_BONDS1, EDM_BONDS2, EDM_BONDS3, EDM_MARGINS_PM, edm_bond_order, edm_bonds,
    edm_bonds_batch, valences,
)


def test_published_values():
    # spot checks against ehoogeboom/e3_diffusion_for_molecules qm9/bond_analyze.py
    assert EDM_BONDS1["C"]["C"] == 154 and EDM_BONDS1["C"]["H"] == 109 and EDM_BONDS1["N"]["Br"] == 214
    assert EDM_BONDS1["I"]["I"] == 266 and EDM_BONDS1["As"] == {"H": 152} and EDM_BONDS1["B"] == {"H": 119, "Cl": 175}
    assert EDM_BONDS2["C"] == {"C": 134, "N": 129, "O": 120, "S": 160} and EDM_BONDS2["S"] == {"P": 186}
    assert EDM_BONDS3 == {"C": {"C": 120, "N": 116, "O": 113}, "N": {"C": 116, "N": 110}, "O": {"C": 113}}
    assert EDM_MARGINS_PM == (10, 5, 3)
    assert EDM_ALLOWED_BONDS["P"] == (3, 5) and EDM_ALLOWED_BONDS["S"] == 4 and EDM_ALLOWED_BONDS["Hg"] == (1, 2)
    # the single-bond table is symmetric (EDM's own consistency check)
    for a, row in EDM_BONDS1.items():
        for b, value in row.items():
            assert EDM_BONDS1[b][a] == value


@pytest.mark.parametrize(
    "z1, z2, distance, order",
    [
        # thresholds: single < 154 + 10 pm, double < 134 + 5 pm, triple < 120 + 3 pm (C-C)
        (6, 6, 1.635, 1), (6, 6, 1.645, 0), (6, 6, 1.385, 2), (6, 6, 1.395, 1), (6, 6, 1.225, 3), (6, 6, 1.235, 2),
        (6, 1, 1.185, 1), (6, 1, 1.195, 0), (1, 1, 0.83, 1), (8, 1, 1.055, 1), (8, 1, 1.065, 0),
        (7, 7, 1.12, 3), (7, 8, 1.25, 2), (7, 8, 1.10, 2),  # no N-O triple bond in the table
        (6, 8, 1.15, 3), (9, 9, 1.51, 1), (9, 6, 1.10, 1),  # C-F has no double-bond entry
        (6, 16, 1.64, 2), (16, 6, 1.64, 2),  # C-S double exists only as bonds2['C']['S']: pairs are sorted
        (11, 17, 2.0, 0), (6, 5, 1.5, 0),  # elements / pairs without a typical length are never bonded
    ],
)
def test_bond_order_thresholds(z1, z2, distance, order):
    assert edm_bond_order(z1, z2, distance) == order
    assert edm_bond_order(z2, z1, distance) == order


def test_batch_equals_single_molecule_version():
    rng = np.random.default_rng(0)
    zs, positions = [], []
    for n in [1, 2, 5, 5, 9, 17, 17, 17]:
        zs.append(rng.choice([1, 6, 7, 8, 9, 16], size=n))
        positions.append(rng.normal(scale=1.2, size=(n, 3)))
    batch, shortest = edm_bonds_batch(zs, positions, max_elements=500)  # tiny blocks: exercise chunking
    for z, pos, (pairs, orders), short in zip(zs, positions, batch, shortest):
        ref_pairs, ref_orders = edm_bonds(z, pos)
        assert np.array_equal(pairs, ref_pairs) and np.array_equal(orders, ref_orders)
        expected = [edm_bond_order(z[i], z[j], np.linalg.norm(pos[i] - pos[j])) for i, j in ref_pairs]
        assert orders.tolist() == expected
        if len(z) > 1:
            d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(z), 1)]
            assert short == pytest.approx(d.min(), abs=1e-5)
        else:
            assert short == np.inf


def test_valences_of_ethene():
    z = np.array([6, 6, 1, 1, 1, 1])
    pos = np.array([[0, 0, 0], [1.33, 0, 0], [-0.55, 0.93, 0], [-0.55, -0.93, 0], [1.88, 0.93, 0], [1.88, -0.93, 0]])
    pairs, orders = edm_bonds(z, pos)
    assert valences(len(z), pairs, orders).tolist() == [4, 4, 1, 1, 1, 1]
