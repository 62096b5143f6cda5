"""LightningDataModule over a packed dataset, giving PyG batches.

Batches carry ``pos [n_atoms, 3]`` float32 (Å), ``z [n_atoms]``, ``charges [n_atoms]`` (zeros when
the source has none), ``fixed [n_atoms]``, ``y [n_graphs, n_props]`` when the set has properties,
``batch [n_atoms]`` and ``ptr [n_graphs + 1]``. Crystals add ``cell [n_graphs, 3, 3]``,
``frac_pos [n_atoms, 3]`` and ``pbc [n_graphs, 3]``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from molgen import keys as K
from molgen.data.datasets import StructureDataset, open_dataset
from molgen.data.statistics import DatasetStatistics


class TrainingView(torch.utils.data.Dataset):
    """Records reduced to the fields training uses, with formal charges always present."""

    def __init__(self, split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Data:
        record = self.split[index]
        n_atoms = record[K.POS].shape[0]
        data = Data(pos=record[K.POS], z=record[K.ATOMIC_NUMBERS], fixed=record[K.FIXED])
        data[K.FORMAL_CHARGES] = record[K.FORMAL_CHARGES] if K.FORMAL_CHARGES in record else torch.zeros(n_atoms, dtype=torch.long)
        for key in (K.PROPERTIES, K.CELL, K.FRAC_POS, K.PBC, K.IS_PROTEIN, K.RESIDUE_TYPE, K.IS_BACKBONE):
            if key in record:
                data[key] = record[key]
        return data


class StructureDataModule(L.LightningDataModule):
    """Train / valid / test loaders of one dataset.

    Parameters
    ----------
    source : dataset name (``qm9``, ``qm9_sample``) or file / folder (see :func:`open_dataset`).
    batch_size : structures per batch.
    num_workers : DataLoader worker processes.
    cache_dir : packed-dataset cache (default ``$MOLGEN_CACHE`` or ``~/.cache/molgen``).
    on_error : ``raise`` or ``skip`` bad records while building.
    max_train : use only the first ``max_train`` training structures (debugging, overfitting).
    seed : shuffling seed of the training loader.
    """

    def __init__(
        self,
        source: str | Path = "qm9_sample",
        batch_size: int = 64,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
        on_error: str = "raise",
        max_train: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.source = source
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.on_error = on_error
        self.max_train = max_train
        self.seed = seed
        self.dataset: StructureDataset | None = None

    def prepare_data(self) -> None:
        open_dataset(self.source, self.cache_dir, on_error=self.on_error)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is None:
            self.dataset = open_dataset(self.source, self.cache_dir, on_error=self.on_error)

    @property
    def statistics(self) -> DatasetStatistics:
        """Statistics of the training split (type vocabulary, size histogram, property mean / std)."""
        self.setup()
        return self.dataset.train_statistics

    def _loader(self, split: str, shuffle: bool, limit: int | None = None) -> DataLoader:
        self.setup()
        view = self.dataset.split(split)
        if limit is not None:
            view.indices = view.indices[:limit]
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            TrainingView(view), batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            generator=generator if shuffle else None, drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True, limit=self.max_train)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
