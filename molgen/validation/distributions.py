"""Distribution distances between a generated set and a reference set of molecules.

Everything is reduced to histograms on fixed bins, so a reference of 100,000 molecules is summarised in a
few kilobytes and cached (:mod:`.reference`):

- atom types: total variation distance between element frequencies (``atom_type_tv``);
- sizes (atoms per molecule): total variation (``size_tv``) and Wasserstein-1 (``size_w1``, atoms);
- bond lengths by bond type (``C-C``, ``C-H``, ... elements sorted alphabetically, bonds as perceived by the
  protocol): Wasserstein-1 in Å per type, and their mean weighted by the reference frequency of each type
  (``bond_length_w1``);
- bond angles by type (``C-C-O``: centre atom in the middle, ends sorted): Wasserstein-1 in degrees, per type
  and weighted mean (``bond_angle_w1``);
- bond-length spread: per bond type the interquartile range of the generated lengths over the reference's
  (``bond_length_spread_by_type``; 1 is as sharp as the reference), and their mean over the bonds to hydrogen
  weighted by the reference frequency of each type (``bond_length_spread``). Bonds to hydrogen are single bonds
  with one length each, so their spread measures sharpness alone; the other types mix bond orders (C-N: single,
  aromatic, triple), whose IQR spans several peaks and can even shrink when lengths are smeared. Wasserstein-1 is
  dominated by shifts of the centre; a model whose bond lengths are centred right but smeared out (the usual
  state of an undertrained one) shows here, and smeared bonds are what push lengths across the bond-order
  thresholds of the stability and validity metrics. Types with fewer than ``SPREAD_MIN_COUNT`` bonds on either
  side are left out.

"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

LENGTH_BINS = np.linspace(0.0, 4.0, 2001)  # Å, width 0.002
ANGLE_BINS = np.linspace(0.0, 180.0, 721)  # degrees, width 0.25
SPREAD_MIN_COUNT = 50


@dataclass
class DistributionStats:
    """Histogram summary of a set of molecules (JSON-serialisable through :meth:`to_dict`)."""

    atom_types: Counter = field(default_factory=Counter)  # element symbol -> count
    sizes: Counter = field(default_factory=Counter)  # atoms per molecule -> count
    bond_lengths: dict[str, np.ndarray] = field(default_factory=dict)  # type -> [len(LENGTH_BINS) - 1] counts
    bond_angles: dict[str, np.ndarray] = field(default_factory=dict)  # type -> [len(ANGLE_BINS) - 1] counts

    def to_dict(self) -> dict[str, Any]:
        def sparse(h: np.ndarray) -> dict[str, int]:
            nz = np.flatnonzero(h)
            return {str(int(i)): int(h[i]) for i in nz}

        return {
            "atom_types": dict(self.atom_types),
            "sizes": {str(k): v for k, v in self.sizes.items()},
            "bond_lengths": {k: sparse(v) for k, v in self.bond_lengths.items()},
            "bond_angles": {k: sparse(v) for k, v in self.bond_angles.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistributionStats":
        def dense(d: dict[str, int], n: int) -> np.ndarray:
            h = np.zeros(n, dtype=np.int64)
            for k, v in d.items():
                h[int(k)] = v
            return h

        return cls(
            atom_types=Counter(data["atom_types"]),
            sizes=Counter({int(k): v for k, v in data["sizes"].items()}),
            bond_lengths={k: dense(v, len(LENGTH_BINS) - 1) for k, v in data["bond_lengths"].items()},
            bond_angles={k: dense(v, len(ANGLE_BINS) - 1) for k, v in data["bond_angles"].items()},
        )


def molecule_stats(zs: Sequence[np.ndarray], positions: Sequence[np.ndarray],
                   bonds: Sequence[tuple[np.ndarray, np.ndarray]]) -> DistributionStats:
    """Histograms of a set: ``zs [n_atoms]``, ``positions [n_atoms, 3]`` and perceived ``(pairs, orders)``."""
    from molgen.elements import SYMBOLS

    stats = DistributionStats()
    if not zs:
        return stats
    sizes = np.array([len(z) for z in zs])
    stats.sizes.update(Counter(sizes.tolist()))
    z_all = np.concatenate([np.asarray(z, dtype=np.int64) for z in zs])
    pos_all = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in positions])
    values, counts = np.unique(z_all, return_counts=True)
    stats.atom_types.update({SYMBOLS[int(v)] if 0 < v < len(SYMBOLS) else f"Z{v}": int(c) for v, c in zip(values, counts)})
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pairs = np.concatenate([np.asarray(p, dtype=np.int64).reshape(-1, 2) + offsets[i] for i, (p, _) in enumerate(bonds)])
    if len(pairs) == 0:
        return stats
    symbols = np.array([SYMBOLS[int(v)] if 0 < v < len(SYMBOLS) else f"Z{v}" for v in range(int(z_all.max()) + 1)])
    sym = symbols[z_all]

    # bond lengths by type
    a, b = pairs[:, 0], pairs[:, 1]
    length = np.linalg.norm(pos_all[a] - pos_all[b], axis=1)
    first = np.where(sym[a] <= sym[b], sym[a], sym[b])
    second = np.where(sym[a] <= sym[b], sym[b], sym[a])
    kind = np.char.add(np.char.add(first, "-"), second)
    for name in np.unique(kind):
        mask = kind == name
        stats.bond_lengths[str(name)] = np.histogram(length[mask], LENGTH_BINS)[0]

    # angles: every pair of bonds sharing a centre atom
    centre = np.concatenate([a, b])
    other = np.concatenate([b, a])
    order = np.argsort(centre, kind="stable")
    centre, other = centre[order], other[order]
    starts = np.searchsorted(centre, np.arange(len(z_all)))
    degree = np.bincount(centre, minlength=len(z_all))
    c_list, e1_list, e2_list = [], [], []
    for i in range(int(degree.max()) if len(degree) else 0):
        for j in range(i + 1, int(degree.max())):
            atoms = np.flatnonzero(degree > j)
            c_list.append(atoms)
            e1_list.append(other[starts[atoms] + i])
            e2_list.append(other[starts[atoms] + j])
    if not c_list:
        return stats
    c, e1, e2 = np.concatenate(c_list), np.concatenate(e1_list), np.concatenate(e2_list)
    u, v = pos_all[e1] - pos_all[c], pos_all[e2] - pos_all[c]
    cosine = (u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    end1 = np.where(sym[e1] <= sym[e2], sym[e1], sym[e2])
    end2 = np.where(sym[e1] <= sym[e2], sym[e2], sym[e1])
    kind = np.char.add(np.char.add(np.char.add(np.char.add(end1, "-"), sym[c]), "-"), end2)
    for name in np.unique(kind):
        stats.bond_angles[str(name)] = np.histogram(angle[kind == name], ANGLE_BINS)[0]
    return stats


def total_variation(p: dict, q: dict) -> float:
    """Total variation distance between two count dictionaries (normalised to frequencies)."""
    keys = set(p) | set(q)
    sp, sq = sum(p.values()) or 1, sum(q.values()) or 1
    return 0.5 * sum(abs(p.get(k, 0) / sp - q.get(k, 0) / sq) for k in keys)


def histogram_w1(h1: np.ndarray, h2: np.ndarray, width: float) -> float:
    """Wasserstein-1 distance between two histograms on the same bins of equal ``width``."""
    s1, s2 = h1.sum(), h2.sum()
    if s1 == 0 or s2 == 0:
        return float("nan")
    return float(np.abs(np.cumsum(h1) / s1 - np.cumsum(h2) / s2).sum() * width)


def histogram_quantile(h: np.ndarray, bins: np.ndarray, q: float) -> float:
    """The ``q`` quantile of a histogram ``h`` on ``bins`` (counts spread uniformly inside each bin)."""
    cdf = np.concatenate([[0.0], np.cumsum(h, dtype=np.float64)]) / max(float(h.sum()), 1.0)  # [len(bins)]
    return float(np.interp(q, cdf, bins)) if h.sum() > 0 else float("nan")


def interquartile_range(h: np.ndarray, bins: np.ndarray) -> float:
    """75th minus 25th percentile of the histogram ``h`` on ``bins``."""
    return histogram_quantile(h, bins, 0.75) - histogram_quantile(h, bins, 0.25)


def _weighted_mean(values: dict[str, float], weights: dict[str, float]) -> float:
    """Mean of ``values`` over the keys of ``weights``, weighted by them (NaN when they sum to zero)."""
    total = sum(weights.values())
    return sum(values[k] * weights[k] for k in weights) / total if total else float("nan")


def spread_ratio(generated: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                 bins: np.ndarray) -> tuple[float, dict[str, float]]:
    """IQR(generated) / IQR(reference) per bond type, and its reference-frequency-weighted mean over the types
    with a hydrogen (``C-H``, ``H-O``, ...)."""
    per_type, weights = {}, {}
    for name, h_ref in reference.items():
        h_gen = generated.get(name)
        if h_gen is None or h_gen.sum() < SPREAD_MIN_COUNT or h_ref.sum() < SPREAD_MIN_COUNT:
            continue
        iqr_ref = interquartile_range(h_ref, bins)
        if iqr_ref > 0:
            per_type[name] = interquartile_range(h_gen, bins) / iqr_ref
            if "H" in name.split("-"):
                weights[name] = float(h_ref.sum())
    return _weighted_mean(per_type, weights), per_type


def compare(generated: DistributionStats, reference: DistributionStats) -> dict[str, Any]:
    """Distances of ``generated`` to ``reference`` (see the module notes); per-type values under ``*_by_type``."""
    out: dict[str, Any] = {
        "atom_type_tv": total_variation(generated.atom_types, reference.atom_types),
        "size_tv": total_variation(generated.sizes, reference.sizes),
    }
    all_sizes = sorted(set(generated.sizes) | set(reference.sizes))
    if all_sizes:
        lo, hi = min(all_sizes), max(all_sizes)
        hg = np.array([generated.sizes.get(s, 0) for s in range(lo, hi + 1)])
        hr = np.array([reference.sizes.get(s, 0) for s in range(lo, hi + 1)])
        out["size_w1"] = histogram_w1(hg, hr, 1.0)
    for key, gen, ref, bins in (
        ("bond_length_w1", generated.bond_lengths, reference.bond_lengths, LENGTH_BINS),
        ("bond_angle_w1", generated.bond_angles, reference.bond_angles, ANGLE_BINS),
    ):
        width = float(bins[1] - bins[0])
        per_type, weights = {}, {}
        for name, h_ref in ref.items():
            if name in gen and gen[name].sum() > 0:
                per_type[name] = histogram_w1(gen[name], h_ref, width)
                weights[name] = float(h_ref.sum())
        out[key] = _weighted_mean(per_type, weights)
        out[f"{key}_by_type"] = per_type
    out["bond_length_spread"], out["bond_length_spread_by_type"] = spread_ratio(
        generated.bond_lengths, reference.bond_lengths, LENGTH_BINS)
    return out
