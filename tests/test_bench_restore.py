"""``benchmarks/bench_sampling.py restore``: real molecules noised to chain step k and carried back to 0."""

import importlib.util
from pathlib import Path

import pytest
import torch

from molgen.data.datasets import open_dataset
from molgen.sampling.model import load_sampling_model

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sampling.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup():
    dataset = open_dataset("qm9_sample", verbose=False)
    return load_sampling_model("qm9"), [dataset[i] for i in range(20)]  # >= 50 C-H bonds for the spread


def _centred(pos):
    return pos.double() - pos.double().mean(0)


def test_restore_from_step_zero_gives_back_the_originals(bench, setup):
    model, originals = setup
    restored = bench.restore_batch(model, originals, 0, torch.Generator().manual_seed(0))
    assert len(restored) == len(originals)
    for a, b in zip(restored, originals):
        assert torch.equal(a.z, b.z)
        assert torch.allclose(_centred(a.pos), _centred(b.pos), atol=1e-5)
    assert bench.bond_spread(restored, originals) == pytest.approx(1.0)


def test_restore_from_a_few_steps_stays_close_and_is_seeded(bench, setup):
    model, originals = setup
    originals = originals[:4]
    first = bench.restore_batch(model, originals, 3, torch.Generator().manual_seed(0))
    again = bench.restore_batch(model, originals, 3, torch.Generator().manual_seed(0))
    for a, b, c in zip(first, again, originals):
        assert torch.equal(a.pos, b.pos) and torch.equal(a.z, b.z)  # same seed, same result
        assert not torch.equal(_centred(a.pos), _centred(c.pos))  # it was noised ...
        assert (_centred(a.pos) - _centred(c.pos)).norm(dim=-1).max() < 0.1  # ... by a few hundredths of an Å
        assert torch.equal(a.z, c.z)
