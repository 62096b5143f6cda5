"""Radial bases of edge lengths and the smooth cutoff envelope.

Two bases: :class:`BesselBasis` (times :class:`PolynomialEnvelope`) for radius
graphs, where features must vanish smoothly at the cutoff so that atoms can
cross it without a jump; :class:`GaussianBasis` for fully connected graphs,
where nothing is cut off and the basis keeps one feature that never vanishes.

Shapes: ``length`` ``[n_edges]`` -> ``[n_edges, n_radial]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class BesselBasis(nn.Module):
    """``sqrt(2 / c) * sin(k pi r / c) / r`` for ``k = 1..n`` (DimeNet), finite at ``r = 0``.

    Examples
    --------
    >>> BesselBasis(8, cutoff=5.0)(torch.tensor([0.0, 1.0, 4.9])).shape
    torch.Size([3, 8])
    """

    def __init__(self, n_radial: int, cutoff: float):
        super().__init__()
        self.n_radial, self.cutoff = n_radial, float(cutoff)
        self.register_buffer("k", torch.arange(1, n_radial + 1, dtype=torch.get_default_dtype()))

    def forward(self, length: Tensor) -> Tensor:
        x = length[:, None] / self.cutoff  # [n_edges, 1]
        # sin(k pi x) / (x c) = k pi / c * sinc(k x), smooth at x = 0
        return math.sqrt(2.0 / self.cutoff) * (self.k * math.pi / self.cutoff) * torch.sinc(self.k * x)


class PolynomialEnvelope(nn.Module):
    """DimeNet's polynomial cutoff ``u(x)``, ``x = r / cutoff``: 1 at 0, zero with ``p``-1 derivatives at 1.

    Examples
    --------
    >>> env = PolynomialEnvelope(cutoff=2.0)
    >>> env(torch.tensor([0.0, 2.0, 3.0])).tolist()
    [1.0, 0.0, 0.0]
    """

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff, self.p = float(cutoff), p

    def forward(self, length: Tensor) -> Tensor:
        p = self.p
        x = (length / self.cutoff).clamp(max=1.0)
        out = (
            1.0
            - (p + 1) * (p + 2) / 2 * x**p
            + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / 2 * x ** (p + 2)
        )
        return out * (length < self.cutoff)


class GaussianBasis(nn.Module):
    """``n - 1`` Gaussians with centres evenly spread on ``[0, max_radius]`` plus ``tanh(r / max_radius)``.

    The last feature keeps growing past ``max_radius``, so distant pairs in a
    fully connected graph still see how far apart they are.

    Examples
    --------
    >>> GaussianBasis(16, max_radius=10.0)(torch.tensor([0.5, 30.0])).shape
    torch.Size([2, 16])
    """

    def __init__(self, n_radial: int, max_radius: float):
        super().__init__()
        if n_radial < 2:
            raise ValueError("GaussianBasis needs n_radial >= 2")
        self.n_radial, self.max_radius = n_radial, float(max_radius)
        centres = torch.linspace(0.0, self.max_radius, n_radial - 1)
        self.register_buffer("centres", centres)
        self.width = self.max_radius / max(n_radial - 2, 1)

    def forward(self, length: Tensor) -> Tensor:
        gauss = torch.exp(-0.5 * ((length[:, None] - self.centres) / self.width) ** 2)  # [n_edges, n - 1]
        return torch.cat([gauss, torch.tanh(length / self.max_radius)[:, None]], dim=-1)
