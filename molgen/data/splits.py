"""Deterministic, documented train / valid / test splits.

- QM9 (``qm9``): the split of EDM and Cormorant: ``numpy.random.seed(0)``, a permutation of the
  130,831 molecules in qm9pack order; the first 100,000 are train, the next 17,748 valid and the
  last 13,083 (10 %) test.
- Any other set: a permutation from ``numpy.random.default_rng(seed)`` (seed 0 by default),
  cut at 80 % / 10 % / 10 %.
- A folder of files named ``train*``, ``val*`` / ``valid*``, ``test*`` keeps those files as the splits.
- Structures that name their molecule (``info["smiles"]``, as GEOM conformers do) are split by molecule
  (:func:`grouped_random_split`): every conformer of a molecule lands in the same split, so no test molecule was
  seen in training under another conformation.
"""

from __future__ import annotations

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")


def edm_qm9_split(n_molecules: int = 130_831) -> dict[str, np.ndarray]:
    """EDM / Cormorant QM9 split as row positions: train 100,000, valid n - 100,000 - int(0.1 n), test int(0.1 n)."""
    n_train = 100_000
    n_test = int(0.1 * n_molecules)
    n_valid = n_molecules - n_train - n_test
    state = np.random.get_state()
    try:
        np.random.seed(0)
        perm = np.random.permutation(n_molecules)
    finally:
        np.random.set_state(state)
    return {
        "train": np.sort(perm[:n_train]),
        "valid": np.sort(perm[n_train : n_train + n_valid]),
        "test": np.sort(perm[n_train + n_valid :]),
    }


def random_split(n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Random split of ``n`` structures by ``fractions`` (train, valid, test) with a fixed seed.

    >>> {k: len(v) for k, v in random_split(10).items()}
    {'train': 8, 'valid': 1, 'test': 1}
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_valid = int(round(fractions[1] * n))
    return {
        "train": np.sort(perm[:n_train]),
        "valid": np.sort(perm[n_train : n_train + n_valid]),
        "test": np.sort(perm[n_train + n_valid :]),
    }


def grouped_random_split(groups: list, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Random split of structures by group: ``groups[i]`` names structure ``i``'s group (e.g. its molecule's
    SMILES; ``None``: a group of its own). Groups are permuted with a fixed seed and cut at ``fractions`` of
    the groups; every structure follows its group.

    >>> {k: v.tolist() for k, v in grouped_random_split(["a", "a", "b", None, "c"], (0.5, 0.25, 0.25)).items()}
    {'train': [0, 1, 3], 'valid': [2], 'test': [4]}
    """
    keys = [("group", g) if g is not None else ("single", i) for i, g in enumerate(groups)]
    unique = list(dict.fromkeys(keys))  # first-appearance order: independent of hashing
    where = random_split(len(unique), fractions, seed)
    split_of = {unique[j]: name for name, members in where.items() for j in members}
    out = {name: [] for name in SPLIT_NAMES}
    for i, key in enumerate(keys):
        out[split_of[key]].append(i)
    return {name: np.asarray(v, dtype=np.int64) for name, v in out.items()}


def split_name_of_file(file_name: str) -> str | None:
    """``train``, ``valid`` or ``test`` from a file name such as ``val.csv`` or ``train_partial.csv``."""
    stem = file_name.lower()
    if stem.startswith("train"):
        return "train"
    if stem.startswith("val"):
        return "valid"
    if stem.startswith("test"):
        return "test"
    return None
