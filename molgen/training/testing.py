"""Small molecules, statistics and batches for tests of training code (shipped so other test suites can reuse them).

Geometries are approximate equilibrium structures (Å), written out here; the properties are made-up numbers in
the range of QM9's ``mu`` (D) and ``gap`` (Ha): tests only need them to be finite and different.
"""

from __future__ import annotations

import lightning as L
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from molgen import keys as K
from molgen.data.statistics import DatasetStatistics, StatisticsAccumulator

__all__ = ["MOLECULES", "tiny_records", "tiny_statistics", "tiny_batch", "TinyDataModule"]

# name -> (atomic numbers, positions in Å, [mu, gap])
MOLECULES = {
    "water": ([8, 1, 1], [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]], [1.85, 0.29]),
    "ammonia": ([7, 1, 1, 1], [[0.0, 0.0, 0.1162], [0.0, 0.9377, -0.2711], [0.8121, -0.4689, -0.2711],
                               [-0.8121, -0.4689, -0.2711]], [1.47, 0.31]),
    "methane": ([6, 1, 1, 1, 1], [[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
                                  [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]], [0.0, 0.49]),
    "formaldehyde": ([6, 8, 1, 1], [[0.0, 0.0, -0.529], [0.0, 0.0, 0.677], [0.0, 0.935, -1.116],
                                    [0.0, -0.935, -1.116]], [2.33, 0.20]),
    "hydrogen_cyanide": ([1, 6, 7], [[0.0, 0.0, -1.63], [0.0, 0.0, -0.565], [0.0, 0.0, 0.585]], [2.98, 0.33]),
    "fluoromethane": ([6, 9, 1, 1, 1], [[0.0, 0.0, -0.63], [0.0, 0.0, 0.753], [0.0, 1.03, -0.99],
                                        [0.892, -0.515, -0.99], [-0.892, -0.515, -0.99]], [1.85, 0.35]),
}

PROPERTY_NAMES = ["mu", "gap"]


def tiny_records(names=None, fixed: dict[str, list[int]] | None = None) -> list[Data]:
    """PyG records of the named molecules (all by default); ``fixed`` maps a name to its fixed atom indices."""
    names = list(MOLECULES) if names is None else list(names)
    fixed = fixed or {}
    records = []
    for name in names:
        z, pos, props = MOLECULES[name]
        n = len(z)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[fixed.get(name, [])] = True
        data = Data(pos=torch.tensor(pos, dtype=torch.float32), z=torch.tensor(z, dtype=torch.long), fixed=mask,
                    y=torch.tensor([props], dtype=torch.float32))
        data[K.FORMAL_CHARGES] = torch.zeros(n, dtype=torch.long)
        data[K.NAME] = name
        records.append(data)
    return records


def tiny_statistics() -> DatasetStatistics:
    """Statistics of :data:`MOLECULES` (elements H, C, N, O, F; properties mu, gap)."""
    acc = StatisticsAccumulator(PROPERTY_NAMES, ["D", "Ha"])
    for record in tiny_records():
        acc.add(record)
    return acc.finish()


def tiny_batch(names=None, fixed: dict[str, list[int]] | None = None) -> Batch:
    """A PyG batch of the named molecules."""
    return Batch.from_data_list(tiny_records(names, fixed))


class TinyDataModule(L.LightningDataModule):
    """In-memory records as a data module (no shuffling): the training loader cycles ``records`` ``repeats``
    times per epoch in batches of ``batch_size``; validation uses the records once."""

    def __init__(self, records: list[Data], batch_size: int = 3, repeats: int = 1,
                 statistics: DatasetStatistics | None = None):
        super().__init__()
        self.records, self.batch_size, self.repeats = records, batch_size, repeats
        self._statistics = statistics or tiny_statistics()

    @property
    def statistics(self) -> DatasetStatistics:
        return self._statistics

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.records * self.repeats, batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.records, batch_size=self.batch_size, shuffle=False)
