"""Equivariant building blocks of the denoiser.

Node features are the irreps ``S x 0e + V x 1o`` (``S`` scalars, ``V`` polar
vectors). They are held as a pair ``h [n, S]``, ``v [n, 3, V]``: the vector
block is *component-major* (x, y, z, each a contiguous row of ``V`` channels),
whereas e3nn's flat layout of ``V x 1o`` is channel-major ``[n, V * 3]``.
Component-major rows keep the per-edge arithmetic vectorised over channels,
which is what makes the edge kernel cheap on CPU; :func:`to_e3nn` and
:func:`from_e3nn` convert. e3nn 0.6 orders ``1o`` components as Cartesian
(x, y, z), so vectors here are ordinary Cartesian vectors.

Each block declares the irreps it takes and gives (``irreps_in``,
``irreps_out``). The blocks compute exactly what the e3nn modules named in
their docstrings compute (tests compare them on random inputs); they are
written out because e3nn's generic kernels are 10-20x slower on CPU for these
small, fixed irreps.

Only parity-respecting paths appear (``0e``/``1o`` features, spherical
harmonics ``0e + 1o (+ 2e)``), so every block is E(3)-equivariant.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from e3nn.math import normalize2mom
from torch import Tensor, nn
from torch.nn import functional as F


def node_irreps(n_scalars: int, n_vectors: int) -> o3.Irreps:
    """``n_scalars x 0e + n_vectors x 1o``."""
    return o3.Irreps(f"{n_scalars}x0e + {n_vectors}x1o").simplify()


def to_e3nn(h: Tensor, v: Tensor) -> Tensor:
    """``h [n, S]``, ``v [n, 3, V]`` -> e3nn flat ``[n, S + 3V]`` of ``S x 0e + V x 1o``."""
    return torch.cat([h, v.transpose(1, 2).reshape(v.shape[0], -1)], dim=-1)


def from_e3nn(x: Tensor, n_scalars: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`to_e3nn`."""
    h, flat = x[:, :n_scalars], x[:, n_scalars:]
    return h, flat.reshape(x.shape[0], -1, 3).transpose(1, 2)


class VectorLinear(nn.Module):
    """e3nn's ``o3.Linear(V_in x 1o -> V_out x 1o)``: ``v @ W / sqrt(V_in)`` with ``W ~ N(0, 1)``.

    Shapes: ``[n, 3, V_in] -> [n, 3, V_out]``.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(f"{n_in}x1o"), o3.Irreps(f"{n_out}x1o")
        self.weight = nn.Parameter(torch.randn(n_in, n_out))
        self.scale = 1.0 / math.sqrt(n_in)

    def forward(self, v: Tensor) -> Tensor:
        return torch.matmul(v, self.weight * self.scale)


class VectorRMSNorm(nn.Module):
    """Equivariant normalisation: ``v_c / rms(|v|) * gamma_c``, the rms over channels.

    Used only in front of blocks (pre-norm), never on the residual stream or the
    output, so per-sample magnitudes reach the output.

    Shapes: ``[n, 3, V] -> [n, 3, V]``.
    """

    def __init__(self, n_vectors: int, eps: float = 1e-6):
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(f"{n_vectors}x1o")
        self.gamma = nn.Parameter(torch.ones(n_vectors))
        self.eps = eps

    def forward(self, v: Tensor) -> Tensor:
        rms = torch.sqrt(v.pow(2).sum(1).mean(-1) + self.eps)  # [n]
        return v * (self.gamma / rms[:, None, None])


class EdgeTensorProduct(nn.Module):
    """Per-edge weighted ``'uvu'`` tensor product of node irreps with edge spherical harmonics.

    ``(C x 0e + C x 1o) ⊗ Y(û) -> C x 0e + C x 1o`` with ``Y = 0e + 1o`` (``lmax=1``) or
    ``0e + 1o + 2e`` (``lmax=2``) and the paths, in e3nn's instruction order::

        0e ⊗ 0e -> 0e      0e ⊗ 1o -> 1o      1o ⊗ 0e -> 1o      1o ⊗ 1o -> 0e     [1o ⊗ 2e -> 1o]

    :meth:`forward` equals e3nn's ``o3.TensorProduct(irreps_in1, irreps_in2, irreps_out,
    instructions(), shared_weights=False, internal_weights=False)`` applied to
    component-normalised spherical harmonics (tested). The ``2e`` harmonic enters through
    ``Σ_j C_{ijk} Y2_j(û) = sqrt(3/2) (û_i û_k - δ_ik / 3)``, so no harmonic beyond ``û`` is
    ever materialised. :meth:`contract` skips e3nn's constant path weights (``coefficients``)
    for callers that fold them into the layer producing the weights.

    Shapes:
        s ``[n_edges, C]``, v ``[n_edges, 3, C]``, unit ``[n_edges, 3]`` (unit edge vectors),
        weight ``[n_edges, weight_numel]`` -> (``[n_edges, C]``, ``[n_edges, 3, C]``).
    """

    def __init__(self, channels: int, lmax: int = 2):
        super().__init__()
        if lmax not in (1, 2):
            raise ValueError(f"EdgeTensorProduct supports lmax 1 or 2, got {lmax}")
        self.channels, self.lmax = channels, lmax
        self.irreps_in1 = node_irreps(channels, channels)
        self.irreps_in2 = o3.Irreps.spherical_harmonics(lmax)
        self.irreps_out = node_irreps(channels, channels)
        self.n_paths = 4 if lmax == 1 else 5
        self.weight_numel = self.n_paths * channels
        n0, n1 = 2, self.n_paths - 2  # number of paths into 0e and into 1o
        coefficients = [
            1.0 / math.sqrt(n0),  # 0e ⊗ 0e -> 0e
            math.sqrt(3.0 / n1),  # 0e ⊗ 1o -> 1o  (Y1 = sqrt(3) û, C = δ / sqrt(3), path weight sqrt(3 / n1))
            1.0 / math.sqrt(n1),  # 1o ⊗ 0e -> 1o
            1.0 / math.sqrt(n0),  # 1o ⊗ 1o -> 0e
        ]
        if lmax == 2:
            coefficients.append(math.sqrt(3.0 / n1) * math.sqrt(1.5))  # 1o ⊗ 2e -> 1o
        self.path_weights = tuple(coefficients)

    @property
    def coefficients(self) -> Tensor:
        """e3nn's constant path weights, ``[n_paths]`` float64."""
        return torch.tensor(self.path_weights, dtype=torch.float64)

    def instructions(self) -> list[tuple[int, int, int, str, bool]]:
        """The e3nn instructions this product implements (indices into the irreps)."""
        ins = [(0, 0, 0, "uvu", True), (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True), (1, 1, 0, "uvu", True)]
        if self.lmax == 2:
            ins.append((1, 2, 1, "uvu", True))
        return ins

    def forward(self, s: Tensor, v: Tensor, unit: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        coefficients = self.coefficients.to(device=weight.device, dtype=weight.dtype)
        w = weight.view(-1, self.n_paths, self.channels) * coefficients[:, None]
        return self.contract(s, v, unit, w.view(weight.shape))

    def contract(self, s: Tensor, v: Tensor, unit: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        """The product with the path weights already folded into ``weight``."""
        w = weight.view(-1, self.n_paths, self.channels).unbind(1)  # n_paths x [n_edges, C]
        unit = unit.to(v.dtype)[:, :, None]  # [n_edges, 3, 1]
        vu = (v * unit).sum(1)  # [n_edges, C]  v · û
        out_s = torch.addcmul(w[0] * s, w[3], vu)
        along = w[1] * s  # coefficient of û
        keep = w[2]  # coefficient of v
        if self.lmax == 2:
            along = torch.addcmul(along, w[4], vu)
            keep = torch.add(keep, w[4], alpha=-1.0 / 3.0)
        out_v = torch.addcmul(along[:, None, :] * unit, keep[:, None, :], v)  # [n_edges, 3, C]
        return out_s, out_v


class InteractionBlock(nn.Module):
    """Message passing over edges with a residual update of the node features.

    For each edge ``j -> i`` a one-hidden-layer MLP on invariants (a radial embedding of
    ``|r_ij|`` and both atoms' scalars) gives the weights of an :class:`EdgeTensorProduct`
    of the sender's features (projected to ``C`` channels) with ``Y(r̂_ij)``. Messages are
    summed over senders, divided by ``sqrt(avg_neighbors)``, mapped back to
    ``S x 0e + V x 1o`` by linear layers and added to the features.

    The first layer of the edge MLP is split into per-atom terms (``A h_i + B h_j``, computed
    once per atom and gathered) and the radial embedding (computed by the caller, for all
    layers at once); the per-edge work is one ``[edge_hidden -> paths * C]`` matrix product and
    the tensor product.

    Shapes: h ``[n_atoms, S]``, v ``[n_atoms, 3, V]``, edge_index ``[2, n_edges]``,
    radial ``[n_edges, edge_hidden]``, unit ``[n_edges, 3]``, envelope ``[n_edges]`` or None
    -> h, v of the same shapes.
    """

    def __init__(
        self,
        n_scalars: int,
        n_vectors: int,
        channels: int,
        edge_hidden: int,
        lmax: int = 2,
        avg_neighbors: float = 16.0,
    ):
        super().__init__()
        self.irreps_in = self.irreps_out = node_irreps(n_scalars, n_vectors)
        self.channels, self.edge_hidden = channels, edge_hidden
        self.norm_s = nn.LayerNorm(n_scalars)
        self.norm_v = VectorRMSNorm(n_vectors)
        self.sender = nn.Linear(n_scalars, edge_hidden)
        self.receiver = nn.Linear(n_scalars, edge_hidden, bias=False)
        self.scalar_in = nn.Linear(n_scalars, channels)
        self.vector_in = VectorLinear(n_vectors, channels)
        self.tp = EdgeTensorProduct(channels, lmax)
        self.edge_out = nn.Linear(edge_hidden, self.tp.weight_numel)
        with torch.no_grad():  # fold e3nn's path weights into the layer that makes the weights
            scale = self.tp.coefficients.repeat_interleave(channels).to(self.edge_out.weight.dtype)
            self.edge_out.weight.mul_(scale[:, None])
            self.edge_out.bias.mul_(scale)
        self.scalar_out = nn.Linear(channels, n_scalars)
        self.vector_out = VectorLinear(channels, n_vectors)
        self.scale = 1.0 / math.sqrt(avg_neighbors)

    def forward(
        self,
        h: Tensor,
        v: Tensor,
        edge_index: Tensor,
        radial: Tensor,
        unit: Tensor,
        envelope: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        src, dst = edge_index[0], edge_index[1]
        n_atoms, C = h.shape[0], self.channels
        hn, vn = self.norm_s(h), self.norm_v(v)
        # gathers of separate per-atom tensors (their backward is a plain index_add, no concatenation)
        s_j = self.scalar_in(hn).index_select(0, src)  # [n_edges, C]
        v_j = self.vector_in(vn).reshape(n_atoms, 3 * C).index_select(0, src).view(-1, 3, C)  # [n_edges, 3, C]
        filt = self.sender(hn).index_select(0, src) + self.receiver(hn).index_select(0, dst)
        filt = F.silu(filt + radial)  # [n_edges, edge_hidden]
        weight = self.edge_out(filt)  # [n_edges, weight_numel]
        if envelope is not None:
            weight = weight * envelope[:, None]
        m_s, m_v = self.tp.contract(s_j, v_j, unit, weight)
        agg_s = m_s.new_zeros(n_atoms, C).index_add_(0, dst, m_s)
        agg_v = m_v.new_zeros(n_atoms, 3 * C).index_add_(0, dst, m_v.reshape(-1, 3 * C))
        h = h + self.scalar_out(agg_s * self.scale)
        v = v + self.vector_out(agg_v.view(n_atoms, 3, C) * self.scale)
        return h, v


class Gate(nn.Module):
    """e3nn's ``nn.Gate(S x 0e, [silu], V x 0e, [sigmoid], V x 1o)`` on ``(h, gates, v)``.

    Second-moment-normalised activations (e3nn's ``normalize2mom``), as in e3nn.

    Shapes: h ``[n, S]``, gates ``[n, V]``, v ``[n, 3, V]`` -> (``[n, S]``, ``[n, 3, V]``).
    """

    def __init__(self, n_scalars: int, n_vectors: int):
        super().__init__()
        self.irreps_in = o3.Irreps(f"{n_scalars}x0e + {n_vectors}x0e + {n_vectors}x1o")
        self.irreps_out = node_irreps(n_scalars, n_vectors)
        self.act_scalars = normalize2mom(F.silu)
        self.act_gates = normalize2mom(torch.sigmoid)

    def forward(self, h: Tensor, gates: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.act_scalars(h), v * self.act_gates(gates)[:, None, :]


class GatedUpdateBlock(nn.Module):
    """Per-atom gated MLP over ``S x 0e + V x 1o`` with a residual update.

    Invariants ``[LN(h), (A v) · (B v)]`` (the ``1o ⊗ 1o -> 0e`` channel-wise product) go through
    a linear layer to ``S`` scalars and ``V`` gates; :class:`Gate` applies SiLU to the scalars and
    multiplies ``C v`` by the sigmoid gates; linear maps bring both back to the residual stream.

    Shapes: h ``[n_atoms, S]``, v ``[n_atoms, 3, V]`` -> same.
    """

    def __init__(self, n_scalars: int, n_vectors: int):
        super().__init__()
        self.irreps_in = self.irreps_out = node_irreps(n_scalars, n_vectors)
        self.n_scalars, self.n_vectors = n_scalars, n_vectors
        self.norm_s = nn.LayerNorm(n_scalars)
        self.norm_v = VectorRMSNorm(n_vectors)
        self.vector_in = VectorLinear(n_vectors, 3 * n_vectors)  # [left | right | gated]
        self.mix = nn.Linear(n_scalars + n_vectors, n_scalars + n_vectors)
        self.gate = Gate(n_scalars, n_vectors)
        self.scalar_out = nn.Linear(n_scalars, n_scalars)
        self.vector_out = VectorLinear(n_vectors, n_vectors)

    def forward(self, h: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        hn, vn = self.norm_s(h), self.norm_v(v)
        left, right, gated = self.vector_in(vn).split(self.n_vectors, dim=-1)
        dots = (left * right).sum(1) / math.sqrt(3.0)  # [n, V] invariants
        scalars, gates = self.mix(torch.cat([hn, dots], dim=-1)).split([self.n_scalars, self.n_vectors], dim=-1)
        out_s, out_v = self.gate(scalars, gates, gated)
        return h + self.scalar_out(out_s), v + self.vector_out(out_v)


class TimeEmbedding(nn.Module):
    """Diffusion time ``t`` in [0, 1] -> ``[t, sin(f_k t), cos(f_k t)]`` (``f_k`` from 1 to 1000 rad) -> MLP.

    Shapes: ``[n_graphs] -> [n_graphs, n_out]``.
    """

    def __init__(self, n_out: int, n_frequencies: int = 16):
        super().__init__()
        self.register_buffer("frequencies", torch.logspace(0.0, 3.0, n_frequencies), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * n_frequencies + 1, n_out), nn.SiLU(), nn.Linear(n_out, n_out))

    def forward(self, t: Tensor) -> Tensor:
        angle = t[:, None] * self.frequencies.to(t.dtype)  # [n_graphs, n_frequencies]
        return self.mlp(torch.cat([t[:, None], torch.sin(angle), torch.cos(angle)], dim=-1))
