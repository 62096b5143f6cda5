"""Bond perception from interatomic distances with the EDM tables, vectorised over whole sets.

The tables below are data: typical single (``EDM_BONDS1``), double (``EDM_BONDS2``) and triple
(``EDM_BONDS3``) bond lengths in pm, the margins and the allowed valences, with the values published in
ehoogeboom/e3_diffusion_for_molecules, ``qm9/bond_analyze.py`` (Hoogeboom et al., "Equivariant diffusion
for molecule generation in 3D", ICML 2022). That file credits the bond lengths to the wiredchemist.com
bond energy / length table and the chemistry-reference.com "Bond Lengths and Enthalpies" table.

The rule (EDM's ``get_bond_order``), for an atom pair ``(a, b)`` at distance ``d`` in pm:

- no bond unless ``d < bonds1[a][b] + 10``;
- double if also the pair is in ``bonds2[a]`` and ``d < bonds2[a][b] + 5``;
- triple if also the pair is in ``bonds3[a]`` and ``d < bonds3[a][b] + 3``.

The double-bond table is not symmetric (``bonds2['C']['S']`` exists, ``bonds2['S']['C']`` does not), so
the order of the pair matters. EDM's validity code and its GEOM stability code sort the pair by the
position of the element in EDM's GEOM atom list (:data:`EDM_ELEMENT_ORDER`); its QM9 stability code uses
the atoms' index order, which gives the same result on every pair of QM9 elements (H, C, N, O, F). We
always sort, so a pair is looked up as ``table[first][second]`` with ``first`` earlier in that list.
Pairs with an element missing from ``bonds1`` are never bonded (EDM's ``check_exists``).

Distances are computed in float32 and scaled to pm in float32, as EDM's code does with its float32
coordinates, so that pairs within rounding distance of a threshold fall on the same side.

>>> import numpy as np
>>> z = np.array([8, 1, 1])
>>> pos = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.24, 0.9266, 0.0]])
>>> pairs, orders = edm_bonds(z, pos)
>>> pairs.tolist(), orders.tolist()
([[0, 1], [0, 2]], [1, 1])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# --- data: EDM qm9/bond_analyze.py (pm) -------------------------------------------------------------
EDM_BONDS1: dict[str, dict[str, int]] = {
    "H": dict(H=74, C=109, N=101, O=96, F=92, B=119, Si=148, P=144, As=152, S=134, Cl=127, Br=141, I=161),
    "C": dict(H=109, C=154, N=147, O=143, F=135, Si=185, P=184, S=182, Cl=177, Br=194, I=214),
    "N": dict(H=101, C=147, N=145, O=140, F=136, Cl=175, Br=214, S=168, I=222, P=177),
    "O": dict(H=96, C=143, N=140, O=148, F=142, Br=172, S=151, P=163, Si=163, Cl=164, I=194),
    "F": dict(H=92, C=135, N=136, O=142, F=142, S=158, Si=160, Cl=166, Br=178, P=156, I=187),
    "B": dict(H=119, Cl=175),
    "Si": dict(Si=233, H=148, C=185, O=163, S=200, F=160, Cl=202, Br=215, I=243),
    "Cl": dict(Cl=199, H=127, C=177, N=175, O=164, P=203, S=207, B=175, Si=202, F=166, Br=214),
    "S": dict(H=134, C=182, N=168, O=151, S=204, F=158, Cl=207, Br=225, Si=200, P=210, I=234),
    "Br": dict(Br=228, H=141, C=194, O=172, N=214, Si=215, S=225, F=178, Cl=214, P=222),
    "P": dict(P=221, H=144, C=184, O=163, Cl=203, S=210, F=156, N=177, Br=222),
    "I": dict(H=161, C=214, Si=243, N=222, O=194, S=234, F=187, I=266),
    "As": dict(H=152),
}
EDM_BONDS2: dict[str, dict[str, int]] = {
    "C": dict(C=134, N=129, O=120, S=160),
    "N": dict(C=129, N=125, O=121),
    "O": dict(C=120, N=121, O=121, P=150),
    "P": dict(O=150, S=186),
    "S": dict(P=186),
}
EDM_BONDS3: dict[str, dict[str, int]] = {
    "C": dict(C=120, N=116, O=113),
    "N": dict(C=116, N=110),
    "O": dict(C=113),
}
EDM_MARGINS_PM: tuple[int, int, int] = (10, 5, 3)  # single, double, triple
# allowed summed bond order per element (an int, or several allowed values)
EDM_ALLOWED_BONDS: dict[str, int | tuple[int, ...]] = {
    "H": 1, "C": 4, "N": 3, "O": 2, "F": 1, "B": 3, "Al": 3, "Si": 4, "P": (3, 5), "S": 4, "Cl": 1, "As": 3,
    "Br": 1, "I": 1, "Hg": (1, 2), "Bi": (3, 5),
}
# EDM's GEOM-drugs atom list (configs/datasets_config.py); its order decides how a pair is looked up
EDM_ELEMENT_ORDER: tuple[str, ...] = (
    "H", "B", "C", "N", "O", "F", "Al", "Si", "P", "S", "Cl", "As", "Br", "I", "Hg", "Bi",
)
# ------------------------------------------------------------------------------------------------------

_ATOMIC_NUMBER = {
    "H": 1, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Al": 13, "Si": 14, "P": 15, "S": 16, "Cl": 17, "As": 33,
    "Br": 35, "I": 53, "Hg": 80, "Bi": 83,
}
N_TYPES = len(EDM_ELEMENT_ORDER) + 1  # last slot: any element not in EDM's list (never bonded)
UNKNOWN_TYPE = N_TYPES - 1


def _type_lookup() -> np.ndarray:
    """[119] int array: atomic number -> index in EDM_ELEMENT_ORDER (UNKNOWN_TYPE for the rest)."""
    table = np.full(119, UNKNOWN_TYPE, dtype=np.int64)
    for index, sym in enumerate(EDM_ELEMENT_ORDER):
        table[_ATOMIC_NUMBER[sym]] = index
    return table


def _threshold_matrix(table: dict[str, dict[str, int]], margin: int) -> np.ndarray:
    """[N_TYPES, N_TYPES] float32 thresholds in pm (-inf = never), looked up with the pair sorted."""
    out = np.full((N_TYPES, N_TYPES), -np.inf, dtype=np.float32)
    for i, first in enumerate(EDM_ELEMENT_ORDER):
        for j in range(i, len(EDM_ELEMENT_ORDER)):
            second = EDM_ELEMENT_ORDER[j]
            if first in table and second in table[first]:
                out[i, j] = out[j, i] = np.float32(table[first][second] + margin)
    return out


TYPE_OF_Z = _type_lookup()
THRESHOLD_1 = _threshold_matrix(EDM_BONDS1, EDM_MARGINS_PM[0])
# a double (triple) bond needs the pair in the single (and double) table as well
THRESHOLD_2 = np.where(np.isfinite(THRESHOLD_1), _threshold_matrix(EDM_BONDS2, EDM_MARGINS_PM[1]), -np.inf).astype(np.float32)
THRESHOLD_3 = np.where(np.isfinite(THRESHOLD_2), _threshold_matrix(EDM_BONDS3, EDM_MARGINS_PM[2]), -np.inf).astype(np.float32)


def edm_bond_order(z1: int, z2: int, distance: float) -> int:
    """EDM bond order (0 none, 1, 2, 3) of one atom pair at ``distance`` Å.

    >>> edm_bond_order(6, 6, 1.54), edm_bond_order(6, 6, 1.34), edm_bond_order(6, 6, 1.20), edm_bond_order(6, 6, 1.7)
    (1, 2, 3, 0)
    """
    a, b = TYPE_OF_Z[int(z1)], TYPE_OF_Z[int(z2)]
    d = np.float32(distance) * np.float32(100)
    if not d < THRESHOLD_1[a, b]:
        return 0
    if not d < THRESHOLD_2[a, b]:
        return 1
    return 3 if d < THRESHOLD_3[a, b] else 2


def pair_distances_pm(pos: np.ndarray) -> np.ndarray:
    """``[..., n, n]`` float32 distances in pm of ``[..., n, 3]`` positions in Å (EDM's float32 arithmetic)."""
    p = np.asarray(pos, dtype=np.float32)
    diff = p[..., :, None, :] - p[..., None, :, :]
    return np.sqrt(np.einsum("...k,...k->...", diff, diff, dtype=np.float32)) * np.float32(100)


def orders_from_distances(types: np.ndarray, dist_pm: np.ndarray) -> np.ndarray:
    """``[..., n, n]`` int8 EDM bond orders from EDM type indices ``[..., n]`` and distances in pm."""
    ti, tj = types[..., :, None], types[..., None, :]
    single = dist_pm < THRESHOLD_1[ti, tj]
    double = single & (dist_pm < THRESHOLD_2[ti, tj])
    triple = double & (dist_pm < THRESHOLD_3[ti, tj])
    orders = single.astype(np.int8) + double.astype(np.int8) + triple.astype(np.int8)
    n = orders.shape[-1]
    orders[..., np.arange(n), np.arange(n)] = 0
    return orders


def edm_bonds(z: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EDM bonds of one molecule.

    Parameters
    ----------
    z : ``[n_atoms]`` atomic numbers.
    pos : ``[n_atoms, 3]`` positions in Å.

    Returns
    -------
    pairs ``[n_bonds, 2]`` (i < j, row-major order) and orders ``[n_bonds]`` (1, 2, 3).
    """
    z = np.asarray(z, dtype=np.int64)
    orders = orders_from_distances(TYPE_OF_Z[np.clip(z, 0, 118)], pair_distances_pm(pos))
    i, j = np.nonzero(np.triu(orders, 1))
    return np.stack([i, j], axis=1), orders[i, j].astype(np.int64)


def edm_bonds_batch(
    zs: Sequence[np.ndarray], positions: Sequence[np.ndarray], max_elements: int = 20_000_000
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """:func:`edm_bonds` for many molecules at once: molecules of equal size are stacked and done together.

    Returns the ``(pairs, orders)`` of each molecule and ``[n_molecules]`` the shortest interatomic distance
    of each in Å (``inf`` for one atom). ``max_elements`` caps one ``[m, n, n, 3]`` block to bound memory.
    """
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(zs)
    shortest = np.full(len(zs), np.inf)
    sizes = np.array([len(z) for z in zs], dtype=np.int64)
    for n in np.unique(sizes):
        members = np.flatnonzero(sizes == n)
        if n < 2:
            for m in members:
                out[m] = (np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
            continue
        chunk = max(1, max_elements // int(n * n * 3))
        iu, ju = np.triu_indices(int(n), 1)
        for start in range(0, len(members), chunk):
            block = members[start:start + chunk]
            pos = np.stack([np.asarray(positions[m], dtype=np.float32) for m in block])  # [m, n, 3]
            z = np.stack([np.asarray(zs[m], dtype=np.int64) for m in block])  # [m, n]
            dist = pair_distances_pm(pos)  # [m, n, n]
            orders = orders_from_distances(TYPE_OF_Z[np.clip(z, 0, 118)], dist)
            upper = orders[:, iu, ju]  # [m, n_pairs]
            shortest[block] = dist[:, iu, ju].min(axis=1) / 100.0
            rows, cols = np.nonzero(upper)
            bounds = np.searchsorted(rows, np.arange(len(block) + 1))
            for row, m in enumerate(block):
                keep = cols[bounds[row]:bounds[row + 1]]
                out[m] = (np.stack([iu[keep], ju[keep]], axis=1), upper[row, keep].astype(np.int64))
    return out, shortest  # type: ignore[return-value]


def valences(n_atoms: int, pairs: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """``[n_atoms]`` summed bond order of each atom (aromatic bonds count as given, e.g. 1.5)."""
    total = np.zeros(n_atoms, dtype=np.float64)
    if len(pairs):
        np.add.at(total, pairs[:, 0], orders)
        np.add.at(total, pairs[:, 1], orders)
    return total
