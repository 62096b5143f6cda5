"""Shared fixtures: paths to bundled and shared data, a seeded generator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def data_dir() -> Path:
    """The project's bundled ``data/`` folder."""
    return DATA


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the project; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch generator for reproducible tests."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: small tensors are faster so, above all on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
