"""Graph builders: which atom pairs exchange messages in the denoiser.

A builder turns positions and the batch vector into :class:`Edges`: an edge
index and the matching edge vectors. The network works from the edge vectors
only, so a periodic builder (neighbours over periodic images, vectors that carry
the cell offset) plugs in without touching the network.

Conventions
-----------
``index[0]`` is the source (the neighbour ``j`` that sends a message),
``index[1]`` the target (the atom ``i`` that receives it), as in PyG's
``source_to_target`` flow. ``vec[e] = pos[i] - pos[j]`` (plus the cell offset
for periodic images): the vector from the neighbour to the receiving atom,
in the units of ``pos`` (Å for molecules).

Shapes:
    pos: ``[n_atoms, 3]``; batch: ``[n_atoms]`` (sorted graph index);
    index: ``[2, n_edges]``; vec: ``[n_edges, 3]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import math
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor

from molgen.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from molgen.model.denoiser import DenoiserInput


class Edges(NamedTuple):
    """Directed edges of a batch of graphs.

    Attributes
    ----------
    index : ``[2, n_edges]`` long, (source j, target i).
    vec : ``[n_edges, 3]``, ``pos[i] - pos[j]`` (plus any periodic offset).
    """

    index: Tensor
    vec: Tensor


def _graph_sizes(batch: Tensor, n_graphs: int | None) -> Tensor:
    """``[n_graphs]`` atom counts from a sorted batch vector."""
    if n_graphs is None:
        n_graphs = int(batch.max()) + 1 if batch.numel() else 0
    return torch.bincount(batch, minlength=n_graphs)


class GraphBuilder(ABC):
    """Base class of the graph builders.

    Subclasses implement :meth:`edge_index`; :meth:`__call__` adds the edge
    vectors. ``cutoff`` is the largest edge length the builder can produce
    (``None``: no limit), which the network uses to choose a radial basis
    that vanishes smoothly at the cutoff.
    """

    cutoff: float | None = None

    @abstractmethod
    def edge_index(self, pos: Tensor, batch: Tensor, n_graphs: int | None = None) -> Tensor:
        """``[2, n_edges]`` long (source, target)."""

    def __call__(self, pos: Tensor, batch: Tensor, n_graphs: int | None = None) -> Edges:
        with torch.no_grad():
            index = self.edge_index(pos, batch, n_graphs)
        vec = pos[index[1]] - pos[index[0]]  # [n_edges, 3], differentiable in pos
        return Edges(index, vec)

    def build(self, inputs: "DenoiserInput") -> Edges:
        """Edges for one denoiser call; builders that need more than positions
        (a periodic builder reading the cell) override this."""
        return self(inputs.pos, inputs.batch, inputs.n_graphs)

    @abstractmethod
    def config(self) -> dict:
        """The plain-dict form that :func:`build_graph` accepts."""


class FullyConnectedGraph(GraphBuilder):
    """All ordered pairs ``(j, i)``, ``j != i``, within each graph: ``n (n - 1)`` edges per graph.

    For small molecules (QM9, GEOM), where every atom sees every other atom.

    Examples
    --------
    >>> batch = torch.tensor([0, 0, 0, 1, 1])
    >>> edges = FullyConnectedGraph()(torch.randn(5, 3), batch)
    >>> edges.index.shape[1]  # 3 * 2 + 2 * 1
    8
    """

    cutoff = None

    def edge_index(self, pos: Tensor, batch: Tensor, n_graphs: int | None = None) -> Tensor:
        device = batch.device
        sizes = _graph_sizes(batch, n_graphs)  # [n_graphs]
        start = torch.cumsum(sizes, 0) - sizes  # [n_graphs] first atom of each graph
        per_atom = sizes[batch]  # [n_atoms] candidates (incl. itself) per receiver
        target = torch.repeat_interleave(torch.arange(batch.numel(), device=device), per_atom)  # [n_pairs]
        first_pair = torch.cumsum(per_atom, 0) - per_atom  # [n_atoms]
        offset = torch.arange(target.numel(), device=device) - first_pair[target]
        source = start[batch[target]] + offset
        keep = source != target
        return torch.stack([source[keep], target[keep]])

    def config(self) -> dict:
        return {"type": "fully_connected"}

    def __repr__(self) -> str:
        return "FullyConnectedGraph()"


class RadiusGraph(GraphBuilder):
    """Pairs closer than ``cutoff`` within each graph, found with a cell list.

    Atoms are binned into cubic cells of side ``cutoff`` (per graph); each atom
    looks only at the 27 cells around its own, so the work grows with the number
    of atoms times the local density rather than with ``n_atoms ** 2``: a protein
    pocket of a few thousand atoms is cheap. Pairs with ``|pos[i] - pos[j]| < cutoff``
    become edges (no self-loops).

    Parameters
    ----------
    cutoff : neighbour radius, in the units of ``pos`` (Å).
    max_neighbors : if given, each receiving atom keeps only its ``max_neighbors``
        nearest sources (ties broken by the lower source index); the graph is then
        no longer symmetric.

    Examples
    --------
    >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]])
    >>> RadiusGraph(cutoff=2.0)(pos, torch.zeros(3, dtype=torch.long)).index.tolist()
    [[1, 0], [0, 1]]
    """

    def __init__(self, cutoff: float, max_neighbors: int | None = None):
        if not cutoff > 0:
            raise ConfigError(f"graph.cutoff must be positive, got {cutoff}")
        if max_neighbors is not None and max_neighbors < 1:
            raise ConfigError(f"graph.max_neighbors must be at least 1, got {max_neighbors}")
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors

    def edge_index(self, pos: Tensor, batch: Tensor, n_graphs: int | None = None) -> Tensor:
        device = pos.device
        n_atoms = pos.shape[0]
        if n_atoms == 0:
            return torch.zeros(2, 0, dtype=torch.long, device=device)
        pos = pos.detach().to(torch.float64)
        # integer cell coordinates, shifted by one so that every neighbour cell is >= 0
        n_graphs = int(batch.max()) + 1
        lowest = torch.full((n_graphs, 3), math.inf, dtype=pos.dtype, device=device)
        lowest = lowest.scatter_reduce(0, batch[:, None].expand(-1, 3), pos, "amin")  # [n_graphs, 3]
        cell = torch.floor((pos - lowest[batch]) / self.cutoff).long() + 1  # [n_atoms, 3]
        dims = cell.max(0).values + 2  # [3] cells per axis incl. the padding layer
        if float(dims.prod()) * n_graphs > 2**62:
            raise ValueError("RadiusGraph: positions span too many cells; are there exploding coordinates?")
        key = ((batch * dims[0] + cell[:, 0]) * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]  # [n_atoms]
        key_sorted, order = torch.sort(key)
        # the 27 neighbouring cells of each atom
        shifts = torch.stack(
            torch.meshgrid(*(torch.arange(-1, 2, device=device),) * 3, indexing="ij"), -1
        ).reshape(27, 3)
        shift_key = (shifts[:, 0] * dims[1] + shifts[:, 1]) * dims[2] + shifts[:, 2]  # [27]
        query = key[:, None] + shift_key[None, :]  # [n_atoms, 27]
        lo = torch.searchsorted(key_sorted, query, right=False)
        hi = torch.searchsorted(key_sorted, query, right=True)
        count = (hi - lo).reshape(-1)  # [n_atoms * 27]
        target = torch.repeat_interleave(torch.arange(n_atoms, device=device).repeat_interleave(27), count)
        first = torch.cumsum(count, 0) - count
        rank = torch.arange(target.numel(), device=device) - torch.repeat_interleave(first, count)
        source = order[torch.repeat_interleave(lo.reshape(-1), count) + rank]
        dist2 = (pos[target] - pos[source]).pow(2).sum(-1)
        keep = (source != target) & (dist2 < self.cutoff**2)
        source, target, dist2 = source[keep], target[keep], dist2[keep]
        # canonical order: by target, then source
        perm = torch.argsort(target * n_atoms + source)
        source, target, dist2 = source[perm], target[perm], dist2[perm]
        if self.max_neighbors is not None and source.numel():
            source, target = self._nearest(source, target, dist2, n_atoms)
        return torch.stack([source, target])

    def _nearest(self, source: Tensor, target: Tensor, dist2: Tensor, n_atoms: int) -> tuple[Tensor, Tensor]:
        """Keep the ``max_neighbors`` nearest sources of every target (input sorted by target, source)."""
        by_dist = torch.argsort(dist2, stable=True)  # ties keep the lower source first
        by_target = by_dist[torch.argsort(target[by_dist], stable=True)]
        t = target[by_target]
        degree = torch.bincount(t, minlength=n_atoms)
        first = torch.cumsum(degree, 0) - degree
        rank = torch.arange(t.numel(), device=t.device) - first[t]
        chosen = by_target[rank < self.max_neighbors]
        chosen = chosen.sort().values  # back to (target, source) order
        return source[chosen], target[chosen]

    def config(self) -> dict:
        return {"type": "radius", "cutoff": self.cutoff, "max_neighbors": self.max_neighbors}

    def __repr__(self) -> str:
        return f"RadiusGraph(cutoff={self.cutoff}, max_neighbors={self.max_neighbors})"


GRAPH_KEYS = {"type", "cutoff", "max_neighbors"}


def build_graph(config: dict | str | GraphBuilder) -> GraphBuilder:
    """A graph builder from its config.

    Accepted forms: a builder (returned as is), ``"fully_connected"``, or a dict
    ``{"type": "fully_connected"}`` / ``{"type": "radius", "cutoff": 5.0, "max_neighbors": 32}``.
    """
    if isinstance(config, GraphBuilder):
        return config
    if isinstance(config, str):
        config = {"type": config}
    if not isinstance(config, dict):
        raise ConfigError(f"graph: expected a dict or a name, got {type(config).__name__}")
    unknown = sorted(set(config) - GRAPH_KEYS)
    if unknown:
        raise ConfigError(f"graph.{unknown[0]}: unknown key (allowed: {', '.join(sorted(GRAPH_KEYS))})")
    kind = config.get("type", "fully_connected")
    if kind == "fully_connected":
        extra = sorted(k for k in config if k != "type")
        if extra:
            raise ConfigError(f"graph.{extra[0]}: not used by a fully connected graph")
        return FullyConnectedGraph()
    if kind == "radius":
        if "cutoff" not in config:
            raise ConfigError("graph.cutoff: required for a radius graph")
        cutoff = config["cutoff"]
        if not isinstance(cutoff, (int, float)) or not math.isfinite(cutoff):
            raise ConfigError(f"graph.cutoff: expected a number, got {cutoff!r}")
        return RadiusGraph(float(cutoff), config.get("max_neighbors"))
    raise ConfigError(f"graph.type: unknown graph type {kind!r} (choose 'fully_connected' or 'radius')")
