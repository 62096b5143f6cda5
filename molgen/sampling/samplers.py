"""Reverse-process samplers with one shared signature.

Every sampler runs the learned reverse process of a :class:`~molgen.diffusion.JointDiffusion` from its prior at
``t = 1`` to clean values at ``t = 0``, on a decreasing grid of times, and is called the same way::

    x0 = sampler.sample(model, process, x_init, context, generator=g, callback=None)

- ``model`` is a :data:`DenoiseFn`: ``model(x_t, t, context) -> predictions`` per field name, each in the
  parameterisation of its corruption (noise ``eps`` or ``x0`` for Gaussian fields, ``x0`` logits for
  categorical ones). Guidance (:mod:`molgen.sampling.guidance`) wraps a model into another ``DenoiseFn``.
- ``x_init`` holds one draw of the prior per field in process space (:meth:`JointDiffusion.prior_sample`);
  atoms marked in ``context.fixed`` carry their (context) values and keep them bit for bit to the end.
- the result is the clean state per field, still in process space (``process.finalize`` maps it back).

The last grid point is the clean end point (``sigma = 0``): every sampler's last step returns the model's ``x0``
estimate for Gaussian fields and a draw from the predicted class probabilities for categorical fields.

Categorical fields have no deterministic or ODE form; every sampler moves them by the ancestral step
``p(x_s | x_t) = sum_k p(x0 = k | x_t) q(x_s | x_t, x0 = k)``, the exact mixture of the per-class posteriors
(as DiGress / MiDi compute it). Plugging the class probabilities straight into the unnormalised posterior
instead (``q(x_t | x_s) sum_k p_k q(x_s | x0 = k)``) is biased towards classes with a small ``q(x_t | x0)``;
:func:`categorical_reverse_probs` folds the per-class normalisers into the weights so that
:meth:`CategoricalCorruption.posterior` computes the exact mixture. The sampler's own update applies to
Gaussian fields.

Samplers (:data:`SAMPLERS`, by name):

- ``ddpm``: ancestral sampling (Ho et al. 2020, Algorithm 2) with the posterior ``q(x_s | x_t, x0_hat)``;
  by default over the full training schedule; with fewer steps it skips steps (= DDIM with ``eta = 1``).
- ``ddim``: DDIM (Song et al. 2021, eq. 12), deterministic for ``eta = 0``, stochastic for ``eta > 0``.
- ``dpm`` (alias ``ode``): the probability-flow ODE of the VP process solved by DPM-Solver++(2M) (Lu et al.
  2022, Algorithm 2), a second-order multistep exponential integrator in data-prediction form: one network call
  per step, first order on the first and last steps. The recommended few-step sampler.
- ``heun``: the same ODE solved by Heun's second-order method in the variance-exploding variables
  ``y = x / alpha``, ``s = sigma / alpha`` (Karras et al. 2022, Algorithm 1, deterministic) on Karras's
  ``rho = 7`` grid: two network calls per step, one on the last. Needs more calls than ``dpm`` for the same
  accuracy (``tests/test_sampling_samplers.py`` measures both against the exact solution).

Time grids (``spacing``, :data:`SPACINGS`): ``uniform`` (DDIM's uniform skip), ``quadratic`` (times ``(i / N)^2``,
DDIM's quadratic skip, at least one chain step apart, so the last steps walk the chain one by one), ``cubic``
(``(i / N)^3``) and ``karras`` (Karras et al.'s ``rho = 7`` spacing of the noise level). Few-step sampling of molecules is decided
at low noise, where bond lengths settle to hundredths of an Ångström: on the shipped QM9 model the quadratic
grid at 100 ancestral steps keeps 92–94 % of the full 1,000-step schedule's molecule stability, the uniform grid
two thirds of it (``benchmarks/sampling.md``). Each sampler has its own default (``ddpm``: quadratic).

Shapes: field values ``[n_atoms, d]``; ``t [n_graphs]``; ``context.batch [n_atoms]``; ``context.fixed [n_atoms]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from molgen.diffusion.corruptions import (
    CategoricalCorruption,
    GaussianCorruption,
    PositionCorruption,
    graph_has_fixed,
    remove_mean,
)
from molgen.diffusion.process import JointDiffusion
from molgen.errors import ConfigError

__all__ = [
    "SamplingContext",
    "DenoiseFn",
    "Sampler",
    "AncestralSampler",
    "DDIMSampler",
    "HeunODESampler",
    "DPMSolverSampler",
    "SAMPLERS",
    "SPACINGS",
    "build_sampler",
    "quadratic_grid",
    "time_grid",
    "categorical_reverse_probs",
]


@dataclass
class SamplingContext:
    """What stays constant along one reverse process.

    Attributes
    ----------
    batch : ``[n_atoms]`` long, sorted graph index of each atom.
    n_graphs : number of structures.
    fixed : ``[n_atoms]`` bool, context atoms kept exactly (or ``None``).
    condition : ``[n_graphs, n_props]`` per-structure property targets in dataset units, or ``None`` for
        unconditional sampling. Opaque to samplers; the model (and guidance) interpret it.
    extra : free slot for model-specific inputs (e.g. a cell for crystals).
    after_step : ``hook(x, s, generator) -> x`` applied to the state after every step (``s`` the new time, a
        float; 0 on the last step), e.g. replacement inpainting (:mod:`molgen.sampling.inpainting`).
    """

    batch: Tensor
    n_graphs: int
    fixed: Tensor | None = None
    condition: Tensor | None = None
    extra: dict[str, Any] | None = None
    after_step: Callable[[dict[str, Tensor], float, "torch.Generator | None"], dict[str, Tensor]] | None = None

    def with_condition(self, condition: Tensor | None) -> "SamplingContext":
        return replace(self, condition=condition)


class DenoiseFn(Protocol):
    """``(x_t per field, t [n_graphs], context) -> raw predictions per field``."""

    def __call__(self, x_t: dict[str, Tensor], t: Tensor, context: SamplingContext) -> dict[str, Tensor]: ...


Callback = Callable[[int, float, dict[str, Tensor]], None]


def _check_steps(steps: int, process: JointDiffusion) -> None:
    """A grid needs at least one step, and no more than the discrete chain it walks has."""
    if steps < 1:
        raise ConfigError(f"sampling steps must be >= 1, got {steps}")
    if process.time_sampling == "discrete" and steps > process.n_steps:
        raise ConfigError(f"{steps} sampling steps, but the model was trained on a {process.n_steps}-step chain")


def time_grid(steps: int, process: JointDiffusion) -> Tensor:
    """Decreasing times ``[steps + 1]`` (float64) from 1 to 0.

    For a model trained on the discrete chain (``time_sampling == "discrete"``) the times are snapped to its
    grid ``k / T`` (evenly spaced in ``k``, as DDIM's "uniform" skip), so the network is only asked about
    times it was trained on; ``steps`` may then not exceed ``T``.
    """
    _check_steps(steps, process)
    if process.time_sampling == "discrete":
        T = process.n_steps
        k = torch.round(torch.linspace(float(T), 0.0, steps + 1, dtype=torch.float64))
        return k / T
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


def power_grid(steps: int, process: JointDiffusion, power: float = 2.0) -> Tensor:
    """Decreasing times ``[steps + 1]`` (float64) from 1 to 0, a power of the step index: ``t_i = (i / N)^power``.

    For a model trained on the discrete chain the times are chain steps ``k_i = max(round(T (i / N)^power), i)``,
    kept at least one chain step apart, so exactly ``steps`` distinct steps; ``steps = T`` is the full chain.
    ``power = 2`` is DDIM's quadratic skip (Song et al. 2021, appendix D.2); with 100 of 1,000 steps its last ten
    steps are single chain steps, with ``power = 3`` the last 31.
    """
    _check_steps(steps, process)
    i = torch.arange(steps, -1, -1, dtype=torch.float64)  # [steps + 1], N .. 0
    if process.time_sampling == "discrete":
        T = process.n_steps
        k = torch.maximum(torch.round(T * (i / steps) ** power), i)
        return k / T
    return (i / steps) ** power


def quadratic_grid(steps: int, process: JointDiffusion) -> Tensor:
    """:func:`power_grid` with ``power = 2`` (DDIM's quadratic skip)."""
    return power_grid(steps, process, 2.0)


def cubic_grid(steps: int, process: JointDiffusion) -> Tensor:
    """:func:`power_grid` with ``power = 3``: still more of the steps at low noise."""
    return power_grid(steps, process, 3.0)


def _per_atom(coef: Tensor, batch: Tensor, like: Tensor) -> Tensor:
    """``[n_graphs]`` -> ``[n_atoms, 1]`` in ``like``'s dtype and device."""
    return coef.to(device=like.device, dtype=like.dtype)[batch].unsqueeze(-1)


def _keep(new: Tensor, old: Tensor, fixed: Tensor | None) -> Tensor:
    return new if fixed is None else torch.where(fixed.unsqueeze(-1), old, new)


def categorical_reverse_probs(corruption: CategoricalCorruption, x_t: Tensor, probs: Tensor, t: Tensor,
                              s: Tensor, batch: Tensor, fixed: Tensor | None = None) -> Tensor:
    """``[n_atoms, K]`` probabilities of ``p(x_s | x_t) = sum_k probs_k q(x_s | x_t, x0 = k)``.

    With ``L = q(x_t | x_s = .)`` (``a_{t|s} x_t + (1 - a_{t|s}) <x_t, m>``), each per-class posterior is
    ``L ⊙ (a_s e_k + (1 - a_s) m) / Z_k`` with ``Z_k = a_s L_k + (1 - a_s) <L, m>``, so the mixture is the
    corruption's posterior evaluated at the weights ``w_k ∝ probs_k / Z_k``.
    """
    ab_t = corruption.schedule.alpha_bar(t.double())
    ab_s = corruption.schedule.alpha_bar(s.double())
    a_ts = _per_atom(ab_t / ab_s, batch, x_t)
    a_s = _per_atom(ab_s, batch, x_t)
    m = corruption.limit.to(device=x_t.device, dtype=x_t.dtype)
    like = a_ts * x_t + (1.0 - a_ts) * (x_t * m).sum(-1, keepdim=True)  # [n_atoms, K]
    z = a_s * like + (1.0 - a_s) * (like * m).sum(-1, keepdim=True)
    w = probs / z.clamp_min(1e-30)
    w = w / w.sum(-1, keepdim=True)
    return corruption.posterior(x_t, w, t, s, batch, fixed).probs


def project_positions(corruption: GaussianCorruption, value: Tensor, context: SamplingContext) -> Tensor:
    """Remove the centre of mass of a position-field estimate in graphs without fixed atoms.

    The network's vector output is not constrained to the zero-centre-of-mass subspace the process lives in
    (training only penalises the component); as EDM does, samplers project it, so samples keep a zero centre of
    mass however the network errs.
    """
    if not isinstance(corruption, PositionCorruption):
        return value
    projected = remove_mean(value, context.batch, context.n_graphs)
    if context.fixed is None:
        return projected
    free = ~graph_has_fixed(context.batch, context.n_graphs, context.fixed)
    return torch.where(free[context.batch].unsqueeze(-1), projected, value)


def _sample_classes(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    index = torch.multinomial(probs.clamp_min(0.0), 1, generator=generator).squeeze(-1)
    return torch.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype)


class Sampler(ABC):
    """Base class: a time grid, a loop over it, one update rule for Gaussian fields.

    Parameters
    ----------
    steps : number of grid intervals (``None``: the process's ``n_steps``, the full schedule).
    spacing : the time grid, one of :data:`SPACINGS` (``None``: the sampler's ``default_spacing``).
    """

    name = "abstract"
    default_spacing = "uniform"

    def __init__(self, steps: int | None = None, spacing: str | None = None):
        self.steps = steps
        spacing = spacing or self.default_spacing
        if spacing not in SPACINGS:
            raise ConfigError(f"unknown time-grid spacing {spacing!r}; choose from {', '.join(SPACINGS)}")
        self.spacing = spacing

    def grid(self, process: JointDiffusion) -> Tensor:
        """Decreasing times ``[n_steps + 1]`` from 1 to 0 (float64)."""
        return SPACINGS[self.spacing](self.steps or process.n_steps, process)

    def network_calls(self, process: JointDiffusion) -> int:
        """Denoiser evaluations per sample run."""
        return len(self.grid(process)) - 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.steps}, spacing={self.spacing!r})"

    # --- the loop -------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, model: DenoiseFn, process: JointDiffusion, x_init: dict[str, Tensor],
               context: SamplingContext, generator: torch.Generator | None = None,
               callback: Callback | None = None) -> dict[str, Tensor]:
        """Run the reverse process from ``x_init`` (``t = 1``) to clean values; see the module docstring."""
        times = self.grid(process)
        fixed, batch, n_graphs = context.fixed, context.batch, context.n_graphs
        anchor = {name: value for name, value in x_init.items()}  # fixed atoms' values, never changed
        x = dict(x_init)
        state: dict[str, Any] = {}
        n = len(times) - 1
        for i in range(n):
            t_val, s_val = float(times[i]), float(times[i + 1])
            device = batch.device
            t = torch.full((n_graphs,), t_val, dtype=torch.float64, device=device)
            s = torch.full((n_graphs,), s_val, dtype=torch.float64, device=device)
            pred = model(x, t, context)
            new: dict[str, Tensor] = {}
            for name, corruption in process.items():
                if isinstance(corruption, CategoricalCorruption):
                    probs = corruption.predict_x0(pred[name], x[name], t, batch)
                    if s_val == 0.0:
                        new[name] = _sample_classes(_keep(probs, x[name], fixed), generator)
                    else:
                        reverse = categorical_reverse_probs(corruption, x[name], probs, t, s, batch, fixed)
                        new[name] = _sample_classes(reverse, generator)
                elif isinstance(corruption, GaussianCorruption):
                    x0_hat = project_positions(corruption, corruption.predict_x0(pred[name], x[name], t, batch),
                                               context)
                    if s_val == 0.0:
                        new[name] = x0_hat
                    else:
                        new[name] = self.update(name, corruption, x[name], x0_hat, t, s, i, context, state, generator)
                else:  # pragma: no cover - future field kinds
                    raise TypeError(f"field {name!r}: no sampling rule for {type(corruption).__name__}")
            new = self.correct(model, process, x, new, t, s, i, context, state, generator) if s_val > 0 else new
            x = {name: _keep(value, anchor[name], fixed) for name, value in new.items()}
            if context.after_step is not None:
                x = context.after_step(x, s_val, generator)
            if callback is not None:
                callback(i, s_val, x)
        return x

    @abstractmethod
    def update(self, name: str, corruption: GaussianCorruption, x_t: Tensor, x0_hat: Tensor, t: Tensor, s: Tensor,
               i: int, context: SamplingContext, state: dict, generator: torch.Generator | None) -> Tensor:
        """``x_s`` of one Gaussian field from ``x_t`` and the model's ``x0`` estimate (``0 < s < t``)."""

    def correct(self, model: DenoiseFn, process: JointDiffusion, x_t: dict[str, Tensor], x_s: dict[str, Tensor],
                t: Tensor, s: Tensor, i: int, context: SamplingContext, state: dict,
                generator: torch.Generator | None) -> dict[str, Tensor]:
        """A second stage after the update (Heun's corrector); identity by default."""
        return x_s


class AncestralSampler(Sampler):
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2): ``x_s ~ q(x_s | x_t, x0_hat)`` at every step.

    With ``steps=None`` it walks the full training chain (``T`` steps); with fewer steps the same posterior
    step jumps between grid times (equal to DDIM with ``eta = 1``), by default on the quadratic grid.
    """

    name = "ddpm"
    default_spacing = "quadratic"

    def update(self, name, corruption, x_t, x0_hat, t, s, i, context, state, generator):
        return corruption.sample_posterior(x_t, x0_hat, t, s, context.batch, context.n_graphs, context.fixed,
                                           generator)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12): ``x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z``.

    ``c^2 = eta^2 Var q(x_s | x_t, x_0)``: ``eta = 0`` is deterministic (a first-order solver of the
    probability-flow ODE), ``eta = 1`` is ancestral sampling.

    Parameters
    ----------
    steps : number of steps (default 100).
    eta : stochasticity in ``[0, 1]``.
    spacing : the time grid (:data:`SPACINGS`).
    """

    name = "ddim"

    def __init__(self, steps: int | None = 100, eta: float = 0.0, spacing: str | None = None):
        super().__init__(steps, spacing)
        if not 0.0 <= eta <= 1.0:
            raise ConfigError(f"DDIM eta must be in [0, 1], got {eta}")
        self.eta = float(eta)

    def __repr__(self) -> str:
        return f"DDIMSampler(steps={self.steps}, eta={self.eta}, spacing={self.spacing!r})"

    def update(self, name, corruption, x_t, x0_hat, t, s, i, context, state, generator):
        return corruption.ddim_step(x_t, x0_hat, t, s, context.batch, context.n_graphs, eta=self.eta,
                                    fixed=context.fixed, generator=generator)


def _ve_sigma(corruption: GaussianCorruption, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(alpha_t, sigma_t / alpha_t)`` ``[n_graphs]`` float64."""
    alpha, sigma = corruption.coefficients(t)
    return alpha, sigma / alpha


def karras_grid(steps: int, process: JointDiffusion, rho: float = 7.0) -> Tensor:
    """Decreasing times ``[<= steps + 1]`` whose noise levels ``s = sigma / alpha`` follow Karras et al. (2022,
    eq. 5): ``s_i = (s_max^(1/rho) + i / (steps - 1) (s_min^(1/rho) - s_max^(1/rho)))^rho``, then ``s = 0``.

    ``s`` is that of the first Gaussian field's schedule; ``s_max`` at ``t = 1``, ``s_min`` at the first step of
    the chain (``t = 1 / T``). Times are found by bisection (``alpha_bar`` is decreasing) and, for a model trained
    on the discrete chain, snapped to its grid (repeated times after snapping are dropped).
    """
    schedule = next(c.schedule for c in process.corruptions.values() if isinstance(c, GaussianCorruption))
    if steps < 2:
        return torch.tensor([1.0, 0.0], dtype=torch.float64)

    def level(t: Tensor) -> Tensor:
        ab = schedule.alpha_bar(t.double())
        return ((1.0 - ab) / ab).sqrt()

    t_min = torch.tensor(1.0 / process.n_steps, dtype=torch.float64)
    s_max, s_min = float(level(torch.tensor(1.0, dtype=torch.float64))), float(level(t_min))
    ramp = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    target = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho  # [steps]
    lo = torch.full_like(target, float(t_min))
    hi = torch.ones_like(target)
    for _ in range(60):  # level(t) is increasing in t
        mid = 0.5 * (lo + hi)
        above = level(mid) > target
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    t = 0.5 * (lo + hi)
    t[0], t[-1] = 1.0, float(t_min)
    if process.time_sampling == "discrete":
        t = torch.unique(torch.round(t * process.n_steps).clamp_min(1)).flip(0) / process.n_steps
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


class HeunODESampler(Sampler):
    """Probability-flow ODE of the VP process, Heun's method (Karras et al. 2022, Algorithm 1).

    With ``y = x / alpha_t`` and ``s = sigma_t / alpha_t`` the ODE is ``dy/ds = eps_hat(alpha y, t)``. Each step is
    an Euler predictor and a trapezoidal corrector (two network calls); the last step to ``s = 0`` is Euler,
    which is exactly ``x0_hat``. Network calls: ``2 steps - 1``. The grid is Karras's ``rho = 7`` spacing of
    ``s`` (:func:`karras_grid`): on a grid uniform in ``t`` the first step would span ``s`` from ~300 to ~5,
    where the trapezoidal rule is far off; another ``spacing`` takes that grid all the same.
    """

    name = "heun"
    default_spacing = "karras"

    def __init__(self, steps: int | None = 50, spacing: str | None = None):
        super().__init__(steps, spacing)

    def network_calls(self, process: JointDiffusion) -> int:
        return 2 * (len(self.grid(process)) - 1) - 1

    def update(self, name, corruption, x_t, x0_hat, t, s, i, context, state, generator):
        alpha_t, s_t = _ve_sigma(corruption, t)
        alpha_s, s_s = _ve_sigma(corruption, s)
        batch = context.batch
        eps = (x_t - _per_atom(alpha_t, batch, x_t) * x0_hat) / _per_atom(alpha_t * s_t, batch, x_t)
        state.setdefault("eps", {})[name] = eps
        y = x_t / _per_atom(alpha_t, batch, x_t) + _per_atom(s_s - s_t, batch, x_t) * eps
        return _per_atom(alpha_s, batch, x_t) * y

    def correct(self, model, process, x_t, x_s, t, s, i, context, state, generator):
        batch, fixed = context.batch, context.fixed
        pred = model({k: _keep(v, x_t[k], fixed) for k, v in x_s.items()}, s, context)
        out = dict(x_s)
        for name, corruption in process.items():
            if not isinstance(corruption, GaussianCorruption):
                continue
            x_pred = _keep(x_s[name], x_t[name], fixed)
            eps_e = project_positions(corruption, corruption.predict_eps(pred[name], x_pred, s, batch), context)
            alpha_t, s_t = _ve_sigma(corruption, t)
            alpha_s, s_s = _ve_sigma(corruption, s)
            eps = state["eps"][name]
            slope = 0.5 * (eps + eps_e)  # trapezoidal rule
            y = x_t[name] / _per_atom(alpha_t, batch, x_pred) + _per_atom(s_s - s_t, batch, x_pred) * slope
            out[name] = _per_atom(alpha_s, batch, x_pred) * y
        return out


class DPMSolverSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second order, data prediction.

    With ``lambda_t = log(alpha_t / sigma_t)`` and ``h = lambda_s - lambda_t``:
    ``x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D`` where ``D = x0_hat`` on the first step and
    ``D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_hat_prev`` (``r = h_prev / h``) afterwards. One network call per step.
    """

    name = "dpm"

    def __init__(self, steps: int | None = 50, spacing: str | None = None):
        super().__init__(steps, spacing)

    def update(self, name, corruption, x_t, x0_hat, t, s, i, context, state, generator):
        batch = context.batch
        alpha_t, sigma_t = corruption.coefficients(t)
        alpha_s, sigma_s = corruption.coefficients(s)
        lam_t = torch.log(alpha_t) - torch.log(sigma_t)
        lam_s = torch.log(alpha_s) - torch.log(sigma_s)
        h = lam_s - lam_t
        history = state.setdefault(name, {})
        d = x0_hat
        if "x0" in history:
            r = history["h"] / h
            d = _per_atom(1.0 + 0.5 / r, batch, x0_hat) * x0_hat - _per_atom(0.5 / r, batch, x0_hat) * history["x0"]
        history["x0"], history["h"] = x0_hat, h
        return _per_atom(sigma_s / sigma_t, batch, x_t) * x_t - _per_atom(alpha_s * torch.expm1(-h), batch, x_t) * d


SPACINGS: dict[str, Callable[[int, JointDiffusion], Tensor]] = {
    "uniform": time_grid,
    "quadratic": quadratic_grid,
    "cubic": cubic_grid,
    "karras": karras_grid,
}

SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (AncestralSampler, DDIMSampler, DPMSolverSampler, HeunODESampler)
}
SAMPLERS["ode"] = DPMSolverSampler  # the probability-flow ODE, by its best solver here


def build_sampler(name: str, steps: int | None = None, eta: float | None = None,
                  spacing: str | None = None) -> Sampler:
    """A sampler by name (``ddpm``, ``ddim``, ``dpm`` = ``ode``, ``heun``); ``steps=None`` takes the sampler's
    default (the full schedule for ``ddpm``, 100 for ``ddim``, 50 for ``dpm`` / ``heun``), ``spacing=None`` its
    default time grid.

    >>> build_sampler("ddim", steps=50, eta=0.5)
    DDIMSampler(steps=50, eta=0.5, spacing='uniform')
    """
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    cls = SAMPLERS[name]
    kwargs: dict[str, Any] = {}
    if steps is not None:
        kwargs["steps"] = int(steps)
    if spacing is not None:
        kwargs["spacing"] = spacing
    if eta is not None:
        if cls is DDIMSampler:
            kwargs["eta"] = float(eta)
        elif eta != 0 and cls is not AncestralSampler:
            raise ConfigError(f"--eta applies to the ddim sampler only, not {name!r}")
    return cls(**kwargs)
