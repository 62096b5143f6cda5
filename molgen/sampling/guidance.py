"""Guidance: steering the reverse process towards property targets or constraints.

A :class:`Guidance` wraps a model (:data:`~molgen.sampling.samplers.DenoiseFn`) into another one, so every sampler
takes guidance without change. Three kinds, combinable in one :class:`Guidance`:

- **classifier-free guidance** (Ho & Salimans 2022) on per-structure properties: the model was trained with the
  condition dropped at random (``diffusion.conditioning.dropout``); sampling mixes the conditional and the
  unconditional predictions, ``pred = uncond + w (cond - uncond)`` (MatterGen's convention: ``w = 1`` is plain
  conditional sampling, ``w = 0`` unconditional, ``w > 1`` sharpens towards the condition). Both predictions
  come from one network call on a doubled batch. An unconditional row is marked by NaN targets.
- **classifier guidance** (Dhariwal & Nichol 2021) from a :class:`NoisyPropertyPredictor` trained on noisy
  structures: ``eps <- eps - scale sigma_t grad_{x_t} log p(y | x_t)`` with a Gaussian likelihood
  ``log p = -sum_k (f_k(x_t, t) - y_k)^2 / (2 s_k^2)`` (``s_k`` in dataset units).
- **constraint guidance**: any differentiable ``f(pos, types, batch) -> energy`` (scalar, or one per structure),
  to be minimised with a ``strength``: the density is tilted by ``exp(-strength f)`` evaluated at the model's clean
  estimate ``x0_hat`` (Chung et al. 2023's "diffusion posterior sampling" approximation); by default the
  gradient skips the network's Jacobian and uses that of the exact denoiser of unit-variance Gaussian data,
  ``d x0_hat / d x_t = alpha_t / (alpha_t^2 + sigma_t^2)`` (``= alpha_t`` for a variance-preserving process; one
  network call), or goes through the network with ``through_model=True`` (one backward pass more). The
  Gaussian Jacobian makes the guidance fade where ``x0_hat`` means nothing (``t -> 1``); the cruder
  ``1 / alpha_t`` blows up there (``sigma_t / alpha_t ~ 300`` at ``t = 1`` for EDM's schedule) and sent every
  sample of the radius-of-gyration benchmark to NaN. For a quadratic energy on Gaussian data the Gaussian
  Jacobian gives the exact tilted score at both ends of the process.

Gradients of position fields are projected like the noise: zero centre of mass for graphs without fixed
atoms, zero on fixed atoms. Guidance acts on Gaussian fields; categorical fields only take the
classifier-free mix (of their logits).

Too strong a guidance pushes samples off the data manifold: ``benchmarks/bench_sampling.py guidance`` measures
property error and validity against the strength.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from molgen.diffusion.corruptions import GaussianCorruption, PositionCorruption, graph_has_fixed, remove_mean
from molgen.diffusion.process import JointDiffusion
from molgen.sampling.samplers import DenoiseFn, SamplingContext

__all__ = [
    "Guidance",
    "GradientTerm",
    "ClassifierGuidance",
    "ConstraintGuidance",
    "NoisyPropertyPredictor",
    "classifier_free_mix",
    "classifier_guidance",
    "check_compatible",
    "load_classifier",
    "predictor_loss",
    "train_property_predictor",
]

Constraint = Callable[[Tensor, Tensor, Tensor], Tensor]  # (pos [n_atoms, 3] Å, types [n_atoms, K], batch) -> energy


def _coef(values: Tensor, batch: Tensor, like: Tensor) -> Tensor:
    return values.to(device=like.device, dtype=like.dtype)[batch].unsqueeze(-1)


def classifier_free_mix(model: DenoiseFn, x_t: dict[str, Tensor], t: Tensor, context: SamplingContext,
                        scale: float) -> dict[str, Tensor]:
    """``uncond + scale (cond - uncond)`` of every field, from one call on the batch stacked with its
    unconditional copy (NaN condition rows)."""
    if context.condition is None:
        raise ValueError("classifier-free guidance needs a condition")
    n, n_atoms = context.n_graphs, context.batch.numel()
    stacked = {name: torch.cat([v, v]) for name, v in x_t.items()}
    batch = torch.cat([context.batch, context.batch + n])
    fixed = None if context.fixed is None else torch.cat([context.fixed, context.fixed])
    condition = torch.cat([context.condition, torch.full_like(context.condition, float("nan"))])
    doubled = SamplingContext(batch=batch, n_graphs=2 * n, fixed=fixed, condition=condition, extra=context.extra)
    out = model(stacked, torch.cat([t, t]), doubled)
    return {name: p[n_atoms:] + scale * (p[:n_atoms] - p[n_atoms:]) for name, p in out.items()}


class GradientTerm(ABC):
    """A term adding ``grad_{x_t} log p(...)`` to the score of Gaussian fields."""

    @abstractmethod
    def gradient(self, model: DenoiseFn, process: JointDiffusion, x_t: dict[str, Tensor], t: Tensor,
                 context: SamplingContext, prediction: dict[str, Tensor]) -> dict[str, Tensor]:
        """``grad_{x_t} log p`` per Gaussian field name (fields may be missing)."""


@dataclass
class ConstraintGuidance(GradientTerm):
    """Minimise ``fn(pos, types, batch)`` with ``strength`` (see module docstring).

    ``fn`` receives positions in Å in the sampling frame ``[n_atoms, 3]``, atom-type features in raw units
    (one-hot-like, ``[n_atoms, n_types]``, the model's element order), and ``batch [n_atoms]``; it returns a
    scalar or ``[n_graphs]`` energies (summed).
    """

    fn: Constraint
    strength: float = 1.0
    through_model: bool = False
    fields: Sequence[str] = ("pos",)

    def gradient(self, model, process, x_t, t, context, prediction):
        names = [n for n in self.fields if isinstance(process[n], GaussianCorruption)]
        types_name = "atom_types" if "atom_types" in process.corruptions else None
        with torch.enable_grad():
            if self.through_model:
                leaves = {n: x_t[n].detach().requires_grad_(True) for n in names}
                inputs = {**x_t, **leaves}
                pred = model(inputs, t, context)
                x0 = {n: process[n].predict_x0(pred[n], inputs[n], t, context.batch) for n in process.corruptions
                      if isinstance(process[n], GaussianCorruption)}
            else:
                x0 = {n: process[n].predict_x0(prediction[n], x_t[n], t, context.batch).detach()
                      for n in process.corruptions if isinstance(process[n], GaussianCorruption)}
                leaves = {n: x0[n].requires_grad_(True) for n in names}
                x0.update(leaves)
            pos = process["pos"].finalize(x0["pos"])
            types = process[types_name].finalize(x0[types_name]) if types_name in x0 else x_t.get(types_name)
            energy = self.fn(pos, types, context.batch).sum()
            grads = torch.autograd.grad(energy, list(leaves.values()), allow_unused=True)
        out = {}
        for (name, leaf), g in zip(leaves.items(), grads):
            if g is None:
                continue
            if not self.through_model:  # d x0_hat / d x_t of a unit-variance Gaussian denoiser
                alpha, sigma = process[name].coefficients(t)
                g = g * _coef(alpha / (alpha ** 2 + sigma ** 2), context.batch, g)
            out[name] = -self.strength * g
        return out


class NoisyPropertyPredictor(nn.Module):
    """Per-structure properties from noisy structures, for classifier guidance.

    The same equivariant network as the denoiser (its invariant outputs, averaged over each structure's atoms),
    reading the noisy fields of the model's :class:`~molgen.training.fields.FieldSet` and the time; trained
    with :func:`predictor_loss` on structures drawn from the forward process at random times. Outputs are
    normalised with the dataset's property mean / std; :meth:`predict` returns dataset units.

    Parameters
    ----------
    fields : the FieldSet of the diffusion model it guides (same process, same encoding).
    property_names : properties to predict (names in the dataset statistics).
    network : keys of :func:`molgen.model.denoiser.build_denoiser` (sizes, graph).
    """

    def __init__(self, fields, property_names: Sequence[str], network: dict | None = None):
        super().__init__()
        from molgen.model.denoiser import build_denoiser

        stats = fields.statistics
        missing = [p for p in property_names if p not in stats.property_names]
        if missing:
            raise ValueError(f"property {missing[0]!r} is not in the dataset statistics ({stats.property_names})")
        self.fields = fields
        self.property_names = list(property_names)
        self.network_config = dict(network or {"hidden_scalars": 64, "hidden_vectors": 16, "n_layers": 3})
        self.index = [stats.property_names.index(p) for p in self.property_names]
        self.register_buffer("mean", torch.tensor([stats.property_mean[i] for i in self.index], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([stats.property_std[i] or 1.0 for i in self.index],
                                                 dtype=torch.float32))
        self.net = build_denoiser({**self.network_config, "n_node_features": fields.n_node_features,
                                   "n_scalar_outputs": len(self.property_names), "n_conditions": 0})
        self._scalar_names = list(fields.widths)

    def forward(self, x_t: dict[str, Tensor], t: Tensor, batch: Tensor, n_graphs: int,
                fixed: Tensor | None = None) -> Tensor:
        """Normalised predictions ``[n_graphs, n_props]``."""
        from torch_geometric.utils import scatter

        from molgen.model.denoiser import DenoiserInput

        features = torch.cat([x_t[name] for name in self._scalar_names], dim=-1)
        out = self.net(DenoiserInput(pos=x_t["pos"], node_features=features, time=t.float(), batch=batch,
                                     n_graphs=n_graphs, fixed=fixed))
        return scatter(out.scalar, batch, dim=0, dim_size=n_graphs, reduce="mean")

    def predict(self, x_t: dict[str, Tensor], t: Tensor, batch: Tensor, n_graphs: int,
                fixed: Tensor | None = None) -> Tensor:
        """Predictions in dataset units ``[n_graphs, n_props]``."""
        return self(x_t, t, batch, n_graphs, fixed) * self.std + self.mean

    # --- persistence (weights_only-safe) ----------------------------------------------------
    def state(self) -> dict:
        return {"kind": "molgen-property-predictor", "property_names": self.property_names,
                "network": self.network_config, "state_dict": self.state_dict()}

    def save(self, path) -> None:
        torch.save(self.state(), path)

    @classmethod
    def load(cls, path, fields, map_location="cpu") -> "NoisyPropertyPredictor":
        raw = torch.load(path, map_location=map_location, weights_only=True)
        if raw.get("kind") != "molgen-property-predictor":
            from molgen.errors import InputError

            raise InputError(path, "not a molgen property-predictor file")
        model = cls(fields, raw["property_names"], raw["network"])
        model.load_state_dict(raw["state_dict"])
        return model.eval()


def predictor_loss(predictor: NoisyPropertyPredictor, batch, generator: torch.Generator | None = None,
                   t: Tensor | None = None, max_time: float = 1.0) -> Tensor:
    """Mean squared error (normalised units) of the predictor on a PyG batch noised by the model's process at
    times ``t`` (default: the process's training times, scaled into ``(0, max_time]``)."""
    fields = predictor.fields
    process = fields.process
    from molgen import keys as K

    n_graphs = int(batch.num_graphs)
    fixed = batch[K.FIXED] if K.FIXED in batch and bool(batch[K.FIXED].any()) else None
    raw = fields.raw_fields(batch)
    x0 = process.prepare(raw, batch.batch, n_graphs, fixed)
    if t is None:
        t = process.sample_time(n_graphs, device=batch.batch.device, generator=generator) * max_time
    noisy = process.corrupt(x0, t, batch.batch, n_graphs, fixed, generator)
    y = batch[K.PROPERTIES].reshape(n_graphs, -1)[:, predictor.index].float()
    target = (y - predictor.mean) / predictor.std
    return (predictor(noisy.x_t, t, batch.batch, n_graphs, fixed) - target).pow(2).mean()


def train_property_predictor(predictor: NoisyPropertyPredictor, loader, steps: int, lr: float = 1e-3,
                             seed: int = 0, log: Callable[[int, float], None] | None = None,
                             max_time: float = 1.0) -> list[float]:
    """A plain AdamW loop over ``loader`` (PyG batches) for ``steps`` steps; returns the losses.

    ``max_time < 1`` trains on low noise only (an oracle for clean structures rather than a guidance classifier).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=lr)
    predictor.train()
    losses: list[float] = []
    while len(losses) < steps:
        for batch in loader:
            loss = predictor_loss(predictor, batch, generator, max_time=max_time)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(predictor.parameters(), 10.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            if log is not None:
                log(len(losses), losses[-1])
            if len(losses) >= steps:
                break
    predictor.eval()
    return losses


@dataclass
class ClassifierGuidance(GradientTerm):
    """Classifier guidance from a :class:`NoisyPropertyPredictor` towards ``target`` (dataset units)."""

    predictor: NoisyPropertyPredictor
    target: Tensor  # [n_props] or [n_graphs, n_props]
    scale: float = 1.0
    sigma: Tensor | float | None = None  # likelihood width per property; default 0.1 dataset std

    def gradient(self, model, process, x_t, t, context, prediction):
        names = [n for n in process.corruptions if isinstance(process[n], GaussianCorruption)]
        with torch.enable_grad():
            leaves = {n: x_t[n].detach().requires_grad_(True) for n in names}
            inputs = {**x_t, **leaves}
            pred = self.predictor.predict(inputs, t, context.batch, context.n_graphs, context.fixed)
            target = self.target.to(pred).expand_as(pred)
            sigma = self.sigma if self.sigma is not None else 0.1 * self.predictor.std
            sigma = torch.as_tensor(sigma, dtype=pred.dtype, device=pred.device)
            log_p = -((pred - target) / sigma).pow(2).sum() / 2
            grads = torch.autograd.grad(log_p, list(leaves.values()), allow_unused=True)
        return {n: self.scale * g for n, g in zip(leaves, grads) if g is not None}


def load_classifier(source, fields=None, device: str | torch.device = "cpu") -> NoisyPropertyPredictor:
    """A :class:`NoisyPropertyPredictor` for classifier guidance, in eval mode on ``device``.

    ``source``: a predictor; a trained :class:`~molgen.training.predictor_module.PropertyPredictorModule`; a
    ``molgen train`` checkpoint of ``task: property_predictor``; or a file written by
    :meth:`NoisyPropertyPredictor.save` (which needs ``fields``, the guided model's FieldSet). Everything loads with
    ``weights_only=True``. With ``fields``, the predictor's noise process must be the guided model's
    (:func:`check_compatible`).
    """
    from pathlib import Path

    from molgen.errors import InputError

    if isinstance(source, NoisyPropertyPredictor):
        predictor = source
    elif isinstance(getattr(source, "predictor", None), NoisyPropertyPredictor):
        predictor = source.predictor
    else:
        path = Path(str(source))
        if not path.is_file():
            raise InputError(path, "classifier file does not exist")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unsafe or corrupt content
            raise InputError(path, f"not a safe molgen property-predictor file: {exc}") from None
        if isinstance(raw, dict) and raw.get("kind") == "molgen-property-predictor":
            if fields is None:
                raise InputError(path, "a bare predictor file: give the guided model's fields to load it")
            predictor = NoisyPropertyPredictor.load(path, fields)
        else:
            from molgen.training.checkpoint import load_predictor

            predictor = load_predictor(path).predictor
    if fields is not None:
        check_compatible(predictor.fields, fields)
    return predictor.to(device).eval()


def _process_spec(fields) -> dict:
    """What defines the noisy inputs a network sees: vocabularies and the corruptions of the enabled fields."""
    cfg = fields.config
    names = ["pos", "atom_types"] + (["charges"] if fields.use_charges else [])
    spec = {name: {k: v for k, v in cfg["fields"][name].items() if k not in ("weight", "enabled")} for name in names}
    return {"fields": spec, "elements": list(fields.elements), "charges": list(fields.charge_values),
            "widths": dict(fields.widths)}


def check_compatible(predictor_fields, model_fields) -> None:
    """Raise ConfigError unless a predictor trained with ``predictor_fields`` reads the noisy structures of the
    model with ``model_fields`` (same element / charge vocabularies, same fields, encodings and schedules)."""
    from molgen.errors import ConfigError

    a, b = _process_spec(predictor_fields), _process_spec(model_fields)
    if a != b:
        differ = sorted(k for k in a if a[k] != b[k])
        raise ConfigError(f"the classifier was trained on a different noise process than the model's (differs in "
                          f"{', '.join(differ)}): train it with the denoiser's `diffusion` section")


# the best of 0.01 - 1 for the QM9 gap predictor guiding the shipped qm9 model (benchmarks/sampling.md 4d); at 0.1
# atom stability already halves, at 1 structures collapse
DEFAULT_CLASSIFIER_SCALE = 0.03


def classifier_guidance(predictor: NoisyPropertyPredictor, condition: dict[str, float] | None,
                        scale: float = DEFAULT_CLASSIFIER_SCALE, sigma: float | None = None) -> ClassifierGuidance:
    """A :class:`ClassifierGuidance` towards ``condition`` (dataset units), which must give every property the
    predictor predicts; ``sigma`` the likelihood width in dataset units (default 0.1 dataset std)."""
    from molgen.errors import ConfigError

    condition = condition or {}
    missing = [p for p in predictor.property_names if p not in condition]
    if missing:
        raise ConfigError(f"--classifier predicts {predictor.property_names}: give --condition {missing[0]}=VALUE")
    target = torch.tensor([float(condition[p]) for p in predictor.property_names], dtype=torch.float32)
    return ClassifierGuidance(predictor, target.to(predictor.mean.device), float(scale), sigma)


@dataclass
class Guidance:
    """Classifier-free guidance (``cfg_scale``) and gradient terms, applied to any model.

    ``cfg_scale=None`` or a context without condition: plain model predictions.
    """

    cfg_scale: float | None = None
    terms: list[GradientTerm] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.cfg_scale is not None or bool(self.terms)

    def wrap(self, model: DenoiseFn, process: JointDiffusion) -> DenoiseFn:
        cfg, terms = self.cfg_scale, list(self.terms)

        def guided(x_t: dict[str, Tensor], t: Tensor, context: SamplingContext) -> dict[str, Tensor]:
            if cfg is not None and context.condition is not None and cfg != 1.0:
                pred = classifier_free_mix(model, x_t, t, context, cfg)
            else:
                pred = model(x_t, t, context)
            if not terms:
                return pred
            total: dict[str, Tensor] = {}
            for term in terms:
                for name, g in term.gradient(model, process, x_t, t, context, pred).items():
                    total[name] = total[name] + g if name in total else g
            pred = dict(pred)
            for name, g in total.items():
                corruption = process[name]
                g = _project(corruption, g.to(x_t[name].dtype), context)
                _, sigma = corruption.coefficients(t)
                eps = corruption.predict_eps(pred[name], x_t[name], t, context.batch)
                eps = eps - _coef(sigma, context.batch, eps) * g
                pred[name] = eps if corruption.parameterization == "eps" else _x0_from_eps(corruption, eps, x_t[name],
                                                                                           t, context.batch)
            return pred

        return guided


def _project(corruption: GaussianCorruption, g: Tensor, context: SamplingContext) -> Tensor:
    """Keep a position gradient in the process's subspace: zero CoM (graphs without fixed atoms), zero on fixed."""
    if context.fixed is not None:
        g = g.masked_fill(context.fixed.unsqueeze(-1), 0.0)
    if isinstance(corruption, PositionCorruption):
        projected = remove_mean(g, context.batch, context.n_graphs)
        if context.fixed is None:
            return projected
        free = ~graph_has_fixed(context.batch, context.n_graphs, context.fixed)
        return torch.where(free[context.batch].unsqueeze(-1), projected, g)
    return g


def _x0_from_eps(corruption: GaussianCorruption, eps: Tensor, x_t: Tensor, t: Tensor, batch: Tensor) -> Tensor:
    alpha, sigma = corruption.coefficients(t)
    return (x_t - _coef(sigma, batch, x_t) * eps) / _coef(alpha, batch, x_t)
