"""Graph builders: fully connected graphs and the cell-list radius graph against brute force."""

from __future__ import annotations

import pytest
import torch

from molgen.errors import ConfigError
from molgen.model.graph import FullyConnectedGraph, RadiusGraph, build_graph


def _batch(sizes: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])


def _brute_force(pos: torch.Tensor, batch: torch.Tensor, cutoff: float) -> set[tuple[int, int]]:
    dist = torch.cdist(pos.double(), pos.double())
    same = batch[:, None] == batch[None, :]
    close = (dist < cutoff) & same & ~torch.eye(len(pos), dtype=torch.bool)
    return {(j, i) for j, i in close.nonzero().tolist()}  # (source, target)


def test_fully_connected_has_all_ordered_pairs_per_graph(generator):
    sizes = [5, 1, 3, 7]
    batch = _batch(sizes)
    pos = torch.randn(len(batch), 3, generator=generator)
    edges = FullyConnectedGraph()(pos, batch)
    assert edges.index.shape[1] == sum(n * (n - 1) for n in sizes)
    pairs = set(map(tuple, edges.index.t().tolist()))
    assert len(pairs) == edges.index.shape[1]  # no duplicates
    expected = _brute_force(pos, batch, cutoff=float("inf"))
    assert pairs == expected
    src, dst = edges.index
    assert torch.allclose(edges.vec, pos[dst] - pos[src])


def test_fully_connected_counts_trailing_empty_graphs(generator):
    batch = _batch([3, 2])
    edges = FullyConnectedGraph()(torch.randn(5, 3, generator=generator), batch, n_graphs=4)
    assert edges.index.shape[1] == 3 * 2 + 2 * 1


@pytest.mark.parametrize("cutoff", [0.7, 1.5, 4.0])
def test_radius_graph_equals_brute_force(cutoff, generator):
    sizes = [40, 1, 25, 60]
    batch = _batch(sizes)
    # graphs at different places and spreads, some atoms far out
    pos = torch.randn(len(batch), 3, generator=generator) * 2.0
    pos += torch.tensor([[0.0, 0, 0], [50, 0, 0], [-3, 8, 1], [0, 0, -100]])[batch]
    pos[5] += 30.0
    edges = RadiusGraph(cutoff)(pos, batch)
    pairs = set(map(tuple, edges.index.t().tolist()))
    assert len(pairs) == edges.index.shape[1]
    assert pairs == _brute_force(pos, batch, cutoff)
    assert len(pairs) > 0
    src, dst = edges.index
    assert torch.allclose(edges.vec, pos[dst] - pos[src])


def test_radius_graph_dense_pocket_sized_input(generator):
    # 3000 atoms at protein density (~0.1 / Å^3) in two graphs
    n = 3000
    batch = torch.cat([torch.zeros(2000, dtype=torch.long), torch.ones(1000, dtype=torch.long)])
    pos = torch.rand(n, 3, generator=generator) * 30.0
    edges = RadiusGraph(4.5)(pos, batch)
    assert set(map(tuple, edges.index.t().tolist())) == _brute_force(pos, batch, 4.5)


def test_radius_graph_max_neighbors_keeps_nearest(generator):
    sizes = [30, 12]
    batch = _batch(sizes)
    pos = torch.randn(len(batch), 3, generator=generator)
    k = 5
    edges = RadiusGraph(2.0, max_neighbors=k)(pos, batch)
    full = RadiusGraph(2.0)(pos, batch)
    src, dst = edges.index
    degree = torch.bincount(dst, minlength=len(batch))
    full_degree = torch.bincount(full.index[1], minlength=len(batch))
    assert torch.equal(degree, full_degree.clamp(max=k))
    assert (full_degree > k).any()  # the limit is exercised
    dist = torch.cdist(pos, pos)
    for i in range(len(batch)):
        kept = src[dst == i]
        candidates = full.index[0][full.index[1] == i]
        if len(candidates) <= k:
            assert set(kept.tolist()) == set(candidates.tolist())
        else:
            nearest = candidates[torch.argsort(dist[i, candidates])[:k]]
            assert set(kept.tolist()) == set(nearest.tolist())


def test_radius_graph_no_edges_and_empty_input():
    pos = torch.tensor([[0.0, 0, 0], [10.0, 0, 0]])
    edges = RadiusGraph(1.0)(pos, torch.zeros(2, dtype=torch.long))
    assert edges.index.shape == (2, 0) and edges.vec.shape == (0, 3)
    edges = RadiusGraph(1.0)(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert edges.index.shape == (2, 0)


def test_edge_vectors_carry_gradients(generator):
    pos = torch.randn(4, 3, generator=generator, requires_grad=True)
    edges = FullyConnectedGraph()(pos, torch.zeros(4, dtype=torch.long))
    edges.vec.pow(2).sum().backward()
    assert pos.grad is not None and pos.grad.abs().sum() > 0


def test_build_graph_from_config():
    assert isinstance(build_graph("fully_connected"), FullyConnectedGraph)
    g = build_graph({"type": "radius", "cutoff": 5.0, "max_neighbors": 16})
    assert isinstance(g, RadiusGraph) and g.cutoff == 5.0 and g.max_neighbors == 16
    assert build_graph(g.config()).config() == g.config()
    with pytest.raises(ConfigError, match="graph.radius"):
        build_graph({"type": "fully_connected", "radius": 3})
    with pytest.raises(ConfigError, match="graph.cutoff"):
        build_graph({"type": "radius"})
    with pytest.raises(ConfigError, match="graph.type"):
        build_graph({"type": "knn"})
    with pytest.raises(ConfigError, match="graph.cutoff"):
        build_graph({"type": "fully_connected", "cutoff": 3.0})
