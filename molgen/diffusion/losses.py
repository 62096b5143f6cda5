"""Denoising losses: per-field, per-atom losses averaged over atoms per graph, then over graphs.

The per-atom loss of a field is its corruption's :meth:`~molgen.diffusion.corruptions.Corruption.per_atom_loss`
(noise- or ``x_0``-parameterised MSE for Gaussian fields, cross-entropy for categorical ones). Fixed atoms carry
no loss. A graph's loss for a field is the mean over its free atoms; the field's loss is the mean over graphs that
have free atoms; the total is the weighted sum of the fields.

:func:`diffusion_loss` is the whole training objective (the ``calc_loss`` the Lightning module delegates to):
sample times, corrupt, call the model, compare.

Shapes: ``batch [n_atoms]``, per-atom losses ``[n_atoms]``, per-graph losses ``[n_graphs]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from molgen.diffusion.process import JointDiffusion, NoisyFields

__all__ = ["LossOutput", "graph_average", "weighted_field_loss", "diffusion_loss"]

# model_fn(noisy fields, t [n_graphs]) -> predictions per field name, each [n_atoms, d]
ModelFn = Callable[[NoisyFields], dict[str, Tensor]]


@dataclass
class LossOutput:
    """The training loss and its parts.

    Attributes
    ----------
    loss : scalar, the weighted sum of the field losses.
    fields : field name -> scalar loss of that field (unweighted).
    per_graph : ``[n_graphs]`` weighted loss of each graph (for loss-vs-time diagnostics).
    t : ``[n_graphs]`` the sampled times.
    noisy : the draw of the forward process.
    predictions : the model's raw predictions per field.
    """

    loss: Tensor
    fields: dict[str, Tensor]
    per_graph: Tensor
    t: Tensor
    noisy: NoisyFields | None = None
    predictions: dict[str, Tensor] = field(default_factory=dict)


def graph_average(per_atom: Tensor, batch: Tensor, n_graphs: int,
                  fixed: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean of ``per_atom [n_atoms]`` over each graph's free atoms.

    Returns ``(per_graph [n_graphs], has_free [n_graphs] bool)``; graphs without free atoms get 0.
    """
    weight = torch.ones_like(per_atom) if fixed is None else (~fixed).to(per_atom.dtype)
    total = scatter(per_atom * weight, batch, dim=0, dim_size=n_graphs, reduce="sum")
    count = scatter(weight, batch, dim=0, dim_size=n_graphs, reduce="sum")
    return total / count.clamp_min(1.0), count > 0


def weighted_field_loss(process: JointDiffusion, predictions: dict[str, Tensor], noisy: NoisyFields,
                        batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                        weights: dict[str, float] | None = None) -> LossOutput:
    """Combine per-field losses of one prediction (see module docstring)."""
    weights = weights or {}
    per_graph_total = torch.zeros(n_graphs, dtype=noisy.t.dtype, device=noisy.t.device)
    field_losses = {}
    has_free_any = torch.zeros(n_graphs, dtype=torch.bool, device=noisy.t.device)
    for name, corruption in process.items():
        per_atom = corruption.per_atom_loss(predictions[name], noisy.targets[name], noisy.x0[name],
                                            noisy.x_t[name], noisy.t, batch)
        per_graph, has_free = graph_average(per_atom, batch, n_graphs, fixed)
        has_free_any |= has_free
        n_valid = has_free.sum().clamp_min(1)
        field_losses[name] = (per_graph * has_free).sum() / n_valid
        per_graph_total = per_graph_total + float(weights.get(name, 1.0)) * per_graph.to(per_graph_total.dtype)
    loss = sum(float(weights.get(name, 1.0)) * value for name, value in field_losses.items())
    return LossOutput(loss=loss, fields=field_losses, per_graph=per_graph_total * has_free_any, t=noisy.t,
                      noisy=noisy, predictions=predictions)


def diffusion_loss(process: JointDiffusion, model_fn: ModelFn, raw: dict[str, Tensor], batch: Tensor,
                   n_graphs: int, fixed: Tensor | None = None, weights: dict[str, float] | None = None,
                   t: Tensor | None = None, generator: torch.Generator | None = None) -> LossOutput:
    """The denoising objective of one batch.

    Parameters
    ----------
    process : the joint forward process.
    model_fn : maps a :class:`NoisyFields` draw to predictions per field.
    raw : clean raw field values per name (``prepare`` is applied here).
    t : times ``[n_graphs]``; drawn with :meth:`JointDiffusion.sample_time` when omitted.
    """
    x0 = process.prepare(raw, batch, n_graphs, fixed)
    if t is None:
        t = process.sample_time(n_graphs, device=batch.device, generator=generator)
    noisy = process.corrupt(x0, t, batch, n_graphs, fixed, generator)
    predictions = model_fn(noisy)
    return weighted_field_loss(process, predictions, noisy, batch, n_graphs, fixed, weights)
