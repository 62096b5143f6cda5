"""The E(3)-equivariant denoiser network.

:class:`EquivariantDenoiser` maps noisy positions, invariant per-atom features,
the diffusion time and optional per-structure conditions to one polar vector
per atom (position noise or score) and invariant per-atom outputs (atom-type /
charge predictions).

Architecture (features ``S x 0e + V x 1o`` per atom, ``n_layers`` layers)::

    h = Linear([node_features, fixed]) + TimeEmbedding(t) + ConditionMLP(c),  v = 0
    repeat n_layers:
        h += Linear_l(time/condition embedding)            per layer, per graph
        h, v = InteractionBlock(h, v, edges)               messages j -> i, residual
        h, v = GatedUpdateBlock(h, v)                      per atom, residual
    vector = o3.Linear(V x 1o -> 1 x 1o)(v) * exp(g(LN(h)))  no normalisation: any scale
    scalar = MLP(LN(h))

The invariant log-gain ``g`` (zero at initialisation) lets the output range over
orders of magnitude (e.g. a score ~ 1 / sigma across noise levels) without
needing huge weights; nothing divides the vector output by its norm.

Symmetry: E(3). Only ``0e``/``1o`` features and parity-respecting paths are used,
and positions enter only through edge vectors, so for any rotation or reflection
``R`` and translation ``t``: ``vector(R x + t) = R vector(x)`` and
``scalar(R x + t) = scalar(x)``. Mirror images of a molecule therefore get
mirrored predictions, so a diffusion model built on it gives both enantiomers
the same probability, as the physics does (their energies are equal). Chirality is
not lost: a chiral pocket passed as fixed atoms breaks the mirror symmetry of
its ligand's environment, and the network sees it. Pseudo-scalars (``0o``) would
only be needed to tell enantiomers apart without such context.

Fixed atoms (``inputs.fixed``) are inputs only: they send messages, carry a
"fixed" input flag, and their vector output is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from e3nn import o3
from torch import Tensor, nn

from molgen.errors import ConfigError
from molgen.model.blocks import GatedUpdateBlock, InteractionBlock, TimeEmbedding, VectorLinear, node_irreps
from molgen.model.graph import Edges, FullyConnectedGraph, GraphBuilder, build_graph
from molgen.model.radial import BesselBasis, GaussianBasis, PolynomialEnvelope


@dataclass
class DenoiserInput:
    """What the denoiser reads.

    Shapes:
        pos ``[n_atoms, 3]`` noisy positions; node_features ``[n_atoms, n_node_features]`` invariant
        per-atom inputs; time ``[n_graphs]`` in [0, 1]; batch ``[n_atoms]`` long, sorted;
        fixed ``[n_atoms]`` bool or None; condition ``[n_graphs, n_conditions]`` or None.
    """

    pos: Tensor
    node_features: Tensor
    time: Tensor
    batch: Tensor
    n_graphs: int
    fixed: Tensor | None = None
    condition: Tensor | None = None


@dataclass
class DenoiserOutput:
    """What the denoiser predicts.

    Shapes: vector ``[n_atoms, 3]`` (rotates with the input, translation-invariant);
    scalar ``[n_atoms, n_scalar_outputs]`` (invariant).
    """

    vector: Tensor
    scalar: Tensor


class EquivariantDenoiser(nn.Module):
    """E(3)-equivariant message-passing denoiser built on e3nn irreps.

    Parameters
    ----------
    n_node_features : width of ``DenoiserInput.node_features``.
    n_scalar_outputs : width of ``DenoiserOutput.scalar``.
    n_conditions : width of ``DenoiserInput.condition`` (0: unconditional).
    hidden_scalars : ``S``, number of ``0e`` channels per atom.
    hidden_vectors : ``V``, number of ``1o`` channels per atom.
    n_layers : number of (interaction + gated update) layers.
    n_radial : size of the radial basis.
    graph : which pairs exchange messages: a :class:`~molgen.model.graph.GraphBuilder` or its config
        (see :func:`~molgen.model.graph.build_graph`); :class:`FullyConnectedGraph` by default.
    message_channels : ``C``, channels of the edge tensor product (default ``V``).
    edge_hidden : hidden width of the per-edge MLP giving the tensor-product weights
        (default ``S // 2``).
    lmax : highest spherical harmonic on edges (1 or 2).
    max_radius : range of the Gaussian basis when the graph has no cutoff (units of ``pos``).
    avg_neighbors : messages are summed and divided by ``sqrt(avg_neighbors)``.

    Examples
    --------
    >>> net = EquivariantDenoiser(6, 5, hidden_scalars=16, hidden_vectors=4, n_layers=1)
    >>> out = net(DenoiserInput(torch.randn(3, 3), torch.randn(3, 6), torch.rand(1),
    ...                         torch.zeros(3, dtype=torch.long), 1))
    >>> out.vector.shape, out.scalar.shape
    (torch.Size([3, 3]), torch.Size([3, 5]))
    """

    def __init__(
        self,
        n_node_features: int,
        n_scalar_outputs: int,
        n_conditions: int = 0,
        *,
        hidden_scalars: int = 128,
        hidden_vectors: int = 32,
        n_layers: int = 6,
        n_radial: int = 16,
        graph: GraphBuilder | dict | str | None = None,
        message_channels: int | None = None,
        edge_hidden: int | None = None,
        lmax: int = 2,
        max_radius: float = 10.0,
        avg_neighbors: float = 16.0,
    ):
        super().__init__()
        self.graph = build_graph(graph) if graph is not None else FullyConnectedGraph()
        self.n_node_features, self.n_scalar_outputs, self.n_conditions = n_node_features, n_scalar_outputs, n_conditions
        S, V = hidden_scalars, hidden_vectors
        C = message_channels if message_channels is not None else V
        edge_hidden = edge_hidden if edge_hidden is not None else max(S // 2, 1)
        self._config = dict(
            n_node_features=n_node_features,
            n_scalar_outputs=n_scalar_outputs,
            n_conditions=n_conditions,
            hidden_scalars=S,
            hidden_vectors=V,
            n_layers=n_layers,
            n_radial=n_radial,
            graph=self.graph.config(),
            message_channels=C,
            edge_hidden=edge_hidden,
            lmax=lmax,
            max_radius=max_radius,
            avg_neighbors=avg_neighbors,
        )
        self.irreps_hidden = node_irreps(S, V)
        self.irreps_out = o3.Irreps(f"1x1o + {n_scalar_outputs}x0e")
        self.n_vectors = V

        cutoff = self.graph.cutoff
        if cutoff is None:
            self.radial_basis: nn.Module = GaussianBasis(n_radial, max_radius)
            self.envelope: nn.Module | None = None
        else:
            self.radial_basis = BesselBasis(n_radial, cutoff)
            self.envelope = PolynomialEnvelope(cutoff)

        self.embed_atoms = nn.Linear(n_node_features + 1, S)  # + the fixed flag
        self.embed_time = TimeEmbedding(S)
        self.embed_condition = (
            nn.Sequential(nn.Linear(n_conditions, S), nn.SiLU(), nn.Linear(S, S)) if n_conditions else None
        )
        if self.embed_condition is not None:  # a new condition starts with no effect (fine-tuning adds it to a
            nn.init.zeros_(self.embed_condition[-1].weight)  # trained model without changing that model)
            nn.init.zeros_(self.embed_condition[-1].bias)
        self.layer_context = nn.ModuleList(nn.Linear(S, S) for _ in range(n_layers))
        # radial part of every layer's edge MLP, computed in one matrix product
        self.radial_embedding = nn.Linear(n_radial, n_layers * edge_hidden, bias=False)
        self.edge_hidden = edge_hidden
        self.interactions = nn.ModuleList(
            InteractionBlock(S, V, C, edge_hidden, lmax, avg_neighbors) for _ in range(n_layers)
        )
        self.updates = nn.ModuleList(GatedUpdateBlock(S, V) for _ in range(n_layers))
        for a, b in zip(self.interactions, self.updates):
            assert a.irreps_out == b.irreps_in == self.irreps_hidden, (a.irreps_out, b.irreps_in)
        self.final_norm = nn.LayerNorm(S)
        self.vector_head = VectorLinear(V, 1)
        self.vector_log_gain = nn.Linear(S, 1)  # invariant per-atom gain exp(.), 1 at initialisation
        nn.init.zeros_(self.vector_log_gain.weight)
        nn.init.zeros_(self.vector_log_gain.bias)
        self.scalar_head = nn.Sequential(nn.Linear(S, S), nn.SiLU(), nn.Linear(S, n_scalar_outputs))

    def config(self) -> dict:
        """The plain dict that :func:`build_denoiser` turns back into this architecture."""
        return dict(self._config)

    def edge_features(self, edges: Edges) -> tuple[Tensor, Tensor, Tensor | None]:
        """Radial basis ``[n_edges, n_radial]``, unit vectors ``[n_edges, 3]``, envelope ``[n_edges]`` or None."""
        length2 = edges.vec.pow(2).sum(-1)  # [n_edges]
        length = torch.sqrt(length2 + 1e-12)
        unit = edges.vec / length[:, None]
        envelope = self.envelope(length) if self.envelope is not None else None
        return self.radial_basis(length), unit, envelope

    def forward(self, inputs: DenoiserInput) -> DenoiserOutput:
        pos, batch = inputs.pos, inputs.batch
        n_atoms = pos.shape[0]
        if inputs.node_features.shape != (n_atoms, self.n_node_features):
            raise ValueError(
                f"node_features: expected shape ({n_atoms}, {self.n_node_features}), "
                f"got {tuple(inputs.node_features.shape)}"
            )
        fixed = inputs.fixed if inputs.fixed is not None else torch.zeros(n_atoms, dtype=torch.bool, device=pos.device)
        dtype = pos.dtype

        time = inputs.time.reshape(-1).to(dtype)  # [n_graphs] (a trailing singleton dimension is accepted)
        if time.shape[0] != inputs.n_graphs:
            raise ValueError(f"time: expected {inputs.n_graphs} values (one per graph), got {tuple(inputs.time.shape)}")
        context = self.embed_time(time)  # [n_graphs, S]
        if self.embed_condition is not None:
            if inputs.condition is None:
                raise ValueError(f"this denoiser expects condition [n_graphs, {self.n_conditions}]")
            context = context + self.embed_condition(inputs.condition.to(dtype))
        elif inputs.condition is not None:
            raise ValueError("condition given, but the denoiser was built with n_conditions=0")

        h = self.embed_atoms(torch.cat([inputs.node_features.to(dtype), fixed[:, None].to(dtype)], -1))
        h = h + context.index_select(0, batch)  # [n_atoms, S]
        v = pos.new_zeros(n_atoms, 3, self.n_vectors)  # [n_atoms, 3, V]

        edges = self.graph.build(inputs)
        basis, unit, envelope = self.edge_features(edges)
        radial = self.radial_embedding(basis).split(self.edge_hidden, dim=-1)  # n_layers x [n_edges, edge_hidden]
        for to_layer, interaction, update, rad in zip(self.layer_context, self.interactions, self.updates, radial):
            h = h + to_layer(context).index_select(0, batch)
            h, v = interaction(h, v, edges.index, rad, unit, envelope)
            h, v = update(h, v)

        hn = self.final_norm(h)
        gain = torch.exp(self.vector_log_gain(hn).clamp(-20.0, 20.0))  # [n_atoms, 1]
        vector = (self.vector_head(v)[:, :, 0] * gain).to(dtype)  # [n_atoms, 3], float32 also under autocast
        vector = torch.where(fixed[:, None], torch.zeros_like(vector), vector)
        return DenoiserOutput(vector=vector, scalar=self.scalar_head(hn).to(dtype))


def fold_dropped_condition(state: dict[str, Tensor], prefix: str = "") -> list[str]:
    """Fold a conditional denoiser's *unconditional mode* into its time embedding, in place, for an
    unconditional denoiser of the same architecture.

    Classifier-free guidance trains a condition that is sometimes dropped; the dropped condition is all zeros, so
    its embedding is the constant ``W2 silu(b1) + b2`` ``[S]`` added to every graph's context. Adding that constant
    to the time embedding's output bias gives a network without ``embed_condition`` whose outputs equal the
    conditional network's with the condition dropped. ``state`` maps tensor names (``prefix`` + this module's
    names) to tensors; the condition tensors are removed. Returns their names (empty when there are none).
    """
    names = {part: f"{prefix}embed_condition.{part}" for part in ("0.weight", "0.bias", "2.weight", "2.bias")}
    if not all(name in state for name in names.values()):
        return []
    hidden = torch.nn.functional.silu(state[names["0.bias"]])  # [S], the first layer's output for a zero input
    offset = state[names["2.weight"]] @ hidden + state[names["2.bias"]]  # [S]
    time_bias = f"{prefix}embed_time.mlp.2.bias"
    state[time_bias] = state[time_bias] + offset.to(state[time_bias].dtype)
    for name in names.values():
        del state[name]
    return list(names.values())


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# size presets: QM9 throughput and parameter counts in benchmarks/model.md
PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(hidden_scalars=128, hidden_vectors=32, n_layers=6),
    "default": dict(hidden_scalars=192, hidden_vectors=48, n_layers=8),
    "large": dict(hidden_scalars=320, hidden_vectors=64, n_layers=9),
}

_MODEL_KEYS = (
    "n_node_features",
    "n_scalar_outputs",
    "n_conditions",
    "preset",
    "hidden_scalars",
    "hidden_vectors",
    "n_layers",
    "n_radial",
    "graph",
    "message_channels",
    "edge_hidden",
    "lmax",
    "max_radius",
    "avg_neighbors",
)


def build_denoiser(config: dict) -> EquivariantDenoiser:
    """An :class:`EquivariantDenoiser` from a plain dict.

    Keys
    ----
    n_node_features (int, required), n_scalar_outputs (int, required), n_conditions (int, 0),
    preset ("small" | "default" | "large"; its sizes are overridden by explicit keys),
    hidden_scalars, hidden_vectors, n_layers, n_radial, message_channels, edge_hidden, lmax,
    max_radius, avg_neighbors (see :class:`EquivariantDenoiser`), and
    graph: ``"fully_connected"`` (default), ``{"type": "fully_connected"}`` or
    ``{"type": "radius", "cutoff": 5.0, "max_neighbors": null}``.

    Unknown keys raise :class:`~molgen.errors.ConfigError` naming the key.

    Examples
    --------
    >>> net = build_denoiser({"n_node_features": 6, "n_scalar_outputs": 5, "preset": "small"})
    >>> net.config()["n_layers"]
    6
    """
    if not isinstance(config, dict):
        raise ConfigError(f"model: expected a mapping, got {type(config).__name__}")
    unknown = [k for k in config if k not in _MODEL_KEYS]
    if unknown:
        raise ConfigError(f"model.{unknown[0]}: unknown key (allowed: {', '.join(_MODEL_KEYS)})")
    for key in ("n_node_features", "n_scalar_outputs"):
        if key not in config:
            raise ConfigError(f"model.{key}: required")
    config = dict(config)
    preset = config.pop("preset", None)
    kwargs: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        kwargs.update(PRESETS[preset])
    kwargs.update(config)
    kwargs["graph"] = build_graph(kwargs.get("graph", "fully_connected"))
    ints = ("n_node_features", "n_scalar_outputs", "n_conditions", "hidden_scalars", "hidden_vectors", "n_layers",
            "n_radial", "message_channels", "edge_hidden", "lmax")
    for key in ints:
        value = kwargs.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ConfigError(f"model.{key}: expected a non-negative integer, got {value!r}")
    if kwargs.get("lmax", 2) not in (1, 2):
        raise ConfigError(f"model.lmax: must be 1 or 2, got {kwargs['lmax']!r}")
    n_node_features = kwargs.pop("n_node_features")
    n_scalar_outputs = kwargs.pop("n_scalar_outputs")
    n_conditions = kwargs.pop("n_conditions", 0)
    return EquivariantDenoiser(n_node_features, n_scalar_outputs, n_conditions, **kwargs)
