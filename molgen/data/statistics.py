"""Dataset statistics stored with every dataset, because the sampler and the model need them.

The sampler draws the number of atoms from :attr:`DatasetStatistics.n_atoms_histogram`; the
model's atom-type vocabulary is :attr:`DatasetStatistics.elements`; property conditioning is
normalised with :attr:`property_mean` / :attr:`property_std`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from molgen import keys as K
from molgen.elements import symbol

if TYPE_CHECKING:
    from torch_geometric.data import Data


@dataclass
class DatasetStatistics:
    """Summary of a set of structure records.

    Attributes
    ----------
    n_structures : number of records.
    n_atoms_histogram : atoms per structure -> number of structures.
    element_counts : atomic number -> number of atoms over the whole set.
    charge_counts : formal charge -> number of atoms (empty if charges are unknown).
    property_names / property_units : names and units of the per-structure properties ``y``.
    property_mean / property_std : per-property mean and standard deviation over the set.
    lattice : for crystals, mean / std / min / max of lengths (Å), angles (degrees), volume
        per atom (Å^3) and the number of periodic structures; empty otherwise.
    """

    n_structures: int = 0
    n_atoms_histogram: dict[int, int] = field(default_factory=dict)
    element_counts: dict[int, int] = field(default_factory=dict)
    charge_counts: dict[int, int] = field(default_factory=dict)
    property_names: list[str] = field(default_factory=list)
    property_units: list[str] = field(default_factory=list)
    property_mean: list[float] = field(default_factory=list)
    property_std: list[float] = field(default_factory=list)
    lattice: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def elements(self) -> list[int]:
        """Atomic numbers present, sorted: the atom-type vocabulary of a model trained on the set."""
        return sorted(self.element_counts)

    @property
    def n_atoms_mean(self) -> float:
        total = sum(self.n_atoms_histogram.values())
        return sum(n * c for n, c in self.n_atoms_histogram.items()) / total if total else 0.0

    @property
    def n_atoms_max(self) -> int:
        return max(self.n_atoms_histogram) if self.n_atoms_histogram else 0

    def n_atoms_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """Sizes ``[n_sizes]`` and their probabilities ``[n_sizes]`` for drawing structure sizes."""
        sizes = np.array(sorted(self.n_atoms_histogram), dtype=np.int64)
        counts = np.array([self.n_atoms_histogram[s] for s in sizes], dtype=np.float64)
        return sizes, counts / counts.sum()

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = asdict(self)
        out["n_atoms_histogram"] = {str(k): v for k, v in sorted(self.n_atoms_histogram.items())}
        out["element_counts"] = {str(k): v for k, v in sorted(self.element_counts.items())}
        out["charge_counts"] = {str(k): v for k, v in sorted(self.charge_counts.items())}
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "DatasetStatistics":
        raw = dict(raw)
        for key in ("n_atoms_histogram", "element_counts", "charge_counts"):
            raw[key] = {int(k): int(v) for k, v in raw.get(key, {}).items()}
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "DatasetStatistics":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def summary(self) -> dict:
        """The JSON report of ``molgen data stats``: counts by element symbol, sizes, lattice."""
        out = {
            "n_structures": self.n_structures,
            "n_atoms_mean": round(self.n_atoms_mean, 4),
            "n_atoms_min": min(self.n_atoms_histogram) if self.n_atoms_histogram else 0,
            "n_atoms_max": self.n_atoms_max,
            "n_atoms_histogram": {str(k): v for k, v in sorted(self.n_atoms_histogram.items())},
            "elements": {symbol(z): c for z, c in sorted(self.element_counts.items())},
        }
        if self.charge_counts:
            out["formal_charges"] = {str(k): v for k, v in sorted(self.charge_counts.items())}
        if self.property_names:
            out["properties"] = {
                name: {"unit": unit, "mean": mean, "std": std}
                for name, unit, mean, std in zip(
                    self.property_names, self.property_units or [""] * len(self.property_names),
                    self.property_mean, self.property_std,
                )
            }
        if self.lattice:
            out["lattice"] = self.lattice
        return out


class StatisticsAccumulator:
    """Builds :class:`DatasetStatistics` from records seen one at a time (constant memory).

    >>> acc = StatisticsAccumulator()
    >>> from molgen.data.record import make_record
    >>> acc.add(make_record([[0, 0, 0], [0, 0, 1.0]], [1, 1]))
    >>> acc.finish().n_atoms_histogram
    {2: 1}
    """

    def __init__(self, property_names: Iterable[str] = (), property_units: Iterable[str] = ()):
        self.property_names = list(property_names)
        self.property_units = list(property_units)
        self.n_structures = 0
        self.sizes: Counter = Counter()
        self.elements: Counter = Counter()
        self.charges: Counter = Counter()
        self._prop_sum: np.ndarray | None = None
        self._prop_sq: np.ndarray | None = None
        self._prop_n = 0
        self._lattice_rows: list[np.ndarray] = []

    def add(self, record: Data) -> None:
        z = record[K.ATOMIC_NUMBERS]
        self.n_structures += 1
        self.sizes[int(z.numel())] += 1
        self.elements.update(_count(z.numpy()))
        if K.FORMAL_CHARGES in record:
            self.charges.update(_count(record[K.FORMAL_CHARGES].numpy()))
        if K.PROPERTIES in record:
            self.add_properties(record[K.PROPERTIES].reshape(-1).double().numpy())
        if K.CELL in record:
            self._lattice_rows.append(_lattice_parameters(record[K.CELL].reshape(3, 3).double().numpy(), int(z.numel())))

    def add_arrays(self, atomic_numbers: np.ndarray, sizes: np.ndarray, properties: np.ndarray | None = None) -> None:
        """Add many structures at once: flat ``[n_atoms_total]`` numbers and ``[n_structures]`` sizes."""
        self.n_structures += len(sizes)
        self.sizes.update(_count(sizes))
        self.elements.update(_count(atomic_numbers))
        if properties is not None and len(properties):
            for row in np.asarray(properties, dtype=np.float64):
                self.add_properties(row)

    def add_properties(self, values: np.ndarray) -> None:
        if self._prop_sum is None:
            self._prop_sum = np.zeros_like(values)
            self._prop_sq = np.zeros_like(values)
        self._prop_sum += values
        self._prop_sq += values**2
        self._prop_n += 1

    def finish(self) -> DatasetStatistics:
        stats = DatasetStatistics(
            n_structures=self.n_structures,
            n_atoms_histogram=dict(sorted(self.sizes.items())),
            element_counts=dict(sorted(self.elements.items())),
            charge_counts=dict(sorted(self.charges.items())),
            property_names=self.property_names,
            property_units=self.property_units,
        )
        if self._prop_n:
            mean = self._prop_sum / self._prop_n
            var = np.maximum(self._prop_sq / self._prop_n - mean**2, 0.0)
            stats.property_mean = mean.tolist()
            stats.property_std = np.sqrt(var).tolist()
        if self._lattice_rows:
            table = np.stack(self._lattice_rows)  # [n_crystals, 8]
            names = ["a", "b", "c", "alpha", "beta", "gamma", "volume", "volume_per_atom"]
            stats.lattice = {
                name: {
                    "mean": float(table[:, i].mean()), "std": float(table[:, i].std()),
                    "min": float(table[:, i].min()), "max": float(table[:, i].max()),
                }
                for i, name in enumerate(names)
            }
            stats.lattice["n_periodic"] = {"count": len(table)}
        return stats


def _count(values: np.ndarray) -> dict[int, int]:
    unique, counts = np.unique(np.asarray(values).astype(np.int64), return_counts=True)
    return {int(u): int(c) for u, c in zip(unique, counts)}


def _lattice_parameters(cell: np.ndarray, n_atoms: int) -> np.ndarray:
    """a, b, c (Å), alpha, beta, gamma (degrees), volume and volume per atom (Å^3) of a [3, 3] cell."""
    lengths = np.linalg.norm(cell, axis=1)
    def angle(u, v):
        return np.degrees(np.arccos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))
    alpha, beta, gamma = angle(cell[1], cell[2]), angle(cell[0], cell[2]), angle(cell[0], cell[1])
    volume = abs(float(np.linalg.det(cell)))
    return np.array([*lengths, alpha, beta, gamma, volume, volume / n_atoms])
