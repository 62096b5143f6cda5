"""How many atoms each generated structure gets.

Three sources, one interface (:class:`SizeDistribution.sample`):

- the training set's histogram of sizes (:class:`HistogramSizes`, from
  :class:`~molgen.data.statistics.DatasetStatistics`),
  as EDM samples ``N`` before generating;
- a fixed value (``--num-atoms 18``);
- an inclusive range drawn uniformly (``--num-atoms 15-20``), or the histogram restricted to the range
  (``restrict_histogram``) so that sizes keep their training frequencies inside it.

Sizes in one batch differ freely: samplers work on PyG-style batches with a graph index per atom.

>>> import torch
>>> parse_num_atoms("15-20").sample(4, torch.Generator().manual_seed(0)).tolist()
[17, 18, 20, 15]
>>> parse_num_atoms("18").sample(2).tolist()
[18, 18]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from molgen.errors import ConfigError

__all__ = ["SizeDistribution", "FixedSize", "RangeSizes", "HistogramSizes", "parse_num_atoms", "size_distribution"]


class SizeDistribution(ABC):
    """Draws structure sizes ``[n]`` (long) with an explicit generator."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``[n]`` sizes."""

    @property
    @abstractmethod
    def max_size(self) -> int:
        """The largest size this distribution can draw."""


@dataclass(frozen=True)
class FixedSize(SizeDistribution):
    """Every structure has ``n_atoms`` atoms."""

    n_atoms: int

    def __post_init__(self):
        if self.n_atoms < 1:
            raise ConfigError(f"number of atoms must be >= 1, got {self.n_atoms}")

    def sample(self, n, generator=None):
        return torch.full((n,), self.n_atoms, dtype=torch.long)

    @property
    def max_size(self):
        return self.n_atoms


@dataclass(frozen=True)
class RangeSizes(SizeDistribution):
    """Sizes uniform on ``low..high`` (inclusive)."""

    low: int
    high: int

    def __post_init__(self):
        if not 1 <= self.low <= self.high:
            raise ConfigError(f"atom-count range must satisfy 1 <= low <= high, got {self.low}-{self.high}")

    def sample(self, n, generator=None):
        return torch.randint(self.low, self.high + 1, (n,), generator=generator)

    @property
    def max_size(self):
        return self.high


class HistogramSizes(SizeDistribution):
    """Sizes drawn with the frequencies of a histogram ``{n_atoms: count}`` (the training set's).

    >>> HistogramSizes({3: 1, 5: 3}).probabilities.tolist()
    [0.25, 0.75]
    """

    def __init__(self, histogram: Mapping[int, int]):
        items = sorted((int(k), float(v)) for k, v in histogram.items() if float(v) > 0)
        if not items:
            raise ConfigError("the size histogram is empty: give --num-atoms")
        if items[0][0] < 1:
            raise ConfigError(f"size histogram holds a structure of {items[0][0]} atoms")
        self.sizes = torch.tensor([k for k, _ in items], dtype=torch.long)
        counts = torch.tensor([v for _, v in items], dtype=torch.float64)
        self.probabilities = counts / counts.sum()

    def sample(self, n, generator=None):
        index = torch.multinomial(self.probabilities, n, replacement=True, generator=generator)
        return self.sizes[index]

    @property
    def max_size(self):
        return int(self.sizes.max())

    def restrict(self, low: int, high: int) -> "HistogramSizes":
        """The histogram limited to ``low..high``; error if no training size lies in the range."""
        kept = {int(s): float(p) for s, p in zip(self.sizes, self.probabilities) if low <= int(s) <= high}
        if not kept:
            raise ConfigError(f"no training structure has {low}-{high} atoms")
        return HistogramSizes(kept)

    def __repr__(self) -> str:
        return f"HistogramSizes({len(self.sizes)} sizes, {int(self.sizes.min())}-{int(self.sizes.max())} atoms)"


def parse_num_atoms(text: str | int | None, histogram: Mapping[int, int] | None = None,
                    restrict_histogram: bool = False) -> SizeDistribution:
    """``None`` -> the histogram; ``"18"`` / ``18`` -> fixed; ``"15-20"`` -> a range (uniform, or the histogram
    restricted to it when ``restrict_histogram``)."""
    if text is None:
        if histogram is None:
            raise ConfigError("no size histogram is available (model without dataset statistics): give --num-atoms")
        return HistogramSizes(histogram)
    if isinstance(text, int):
        return FixedSize(text)
    raw = str(text).strip()
    try:
        if "-" in raw:
            low, high = (int(part) for part in raw.split("-", 1))
            if restrict_histogram and histogram is not None:
                return HistogramSizes(histogram).restrict(low, high)
            return RangeSizes(low, high)
        return FixedSize(int(raw))
    except ValueError:
        raise ConfigError(f"--num-atoms: expected N or LOW-HIGH (e.g. 18 or 15-20), got {text!r}") from None


def size_distribution(statistics=None, num_atoms: str | int | None = None,
                      restrict_histogram: bool = False, min_atoms: int = 1) -> SizeDistribution:
    """The size distribution of a sampling run from a model's dataset statistics and ``--num-atoms``.

    ``min_atoms``: with the histogram (no ``num_atoms``), only sizes of at least this many atoms are drawn (a run
    with a fragment of ``m`` atoms passes ``m + 1``).
    """
    histogram = getattr(statistics, "n_atoms_histogram", None) if statistics is not None else None
    sizes = parse_num_atoms(num_atoms, histogram, restrict_histogram)
    if num_atoms is None and min_atoms > 1 and isinstance(sizes, HistogramSizes):
        sizes = sizes.restrict(min_atoms, max(min_atoms, sizes.max_size))
    return sizes
