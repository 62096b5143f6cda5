"""Noise schedules of variance-preserving diffusion, in continuous time with an exact discrete view.

A schedule is a function ``alpha_bar(t)`` on ``t in [0, 1]``: the signal fraction of the marginal
``q(x_t | x_0) = N(sqrt(alpha_bar(t)) x_0, (1 - alpha_bar(t)) I)``. Everything else follows from it:

- ``sigma2(t) = 1 - alpha_bar(t)``, ``snr(t) = alpha_bar / sigma2``, ``log_snr(t)``;
- the transition between two times ``s < t``: ``alpha_bar(t | s) = alpha_bar(t) / alpha_bar(s)``;
- the discrete chain on ``T`` steps with ``t_k = k / T``: ``beta_k = 1 - alpha_bar(t_k) / alpha_bar(t_{k-1})``,
  so that ``prod_{j<=k} (1 - beta_j) = alpha_bar(t_k) / alpha_bar(0)``. The discrete and continuous views are
  therefore the same process sampled on a grid; :meth:`NoiseSchedule.discretize` returns that grid.

Every schedule is mapped into ``[s, 1 - s]`` by the precision affine map of EDM (Hoogeboom et al. 2022,
"polynomial_2" with ``s = 1e-5``): ``alpha_bar = (1 - 2 s) f(t) + s`` for a shape ``f`` falling from 1 to 0.
This keeps ``log_snr`` finite at both ends, so ``alpha_bar(0) ~ 1`` and ``alpha_bar(1) ~ 0`` without
clipping betas step by step. (EDM additionally clips the ratio of consecutive steps at 0.001 before adding
``s``; on its 1000-step grid that only touches the last step, where it gives ``alpha_bar(1) = 1.0004e-5``
instead of our ``1.0000e-5``; every other grid value is identical.)

All computations are done in float64 and returned in the dtype of ``t``.

Shapes: ``t`` is any shape (usually ``[n_graphs]``); outputs have the shape of ``t``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "NoiseSchedule",
    "CosineSchedule",
    "PolynomialSchedule",
    "LinearSchedule",
    "ExponentialSchedule",
    "DiscreteSchedule",
    "build_schedule",
    "SCHEDULES",
]


class NoiseSchedule(ABC):
    """Base class: subclasses define the shape ``_f(t)`` (float64, 1 at t=0, 0 at t=1, decreasing).

    Parameters
    ----------
    precision : the ``s`` of ``alpha_bar = (1 - 2 s) f(t) + s``.
    """

    name = "base"

    def __init__(self, precision: float = 1e-5):
        if not 0 < precision < 0.5:
            raise ValueError(f"precision must be in (0, 0.5), got {precision}")
        self.precision = float(precision)

    # --- the one function a subclass defines -------------------------------------------------
    @abstractmethod
    def _f(self, t: Tensor) -> Tensor:
        """The schedule's shape at times ``t``."""

    # --- derived quantities ---------------------------------------------------------------------
    def alpha_bar(self, t: Tensor) -> Tensor:
        """Signal fraction ``alpha_bar(t)`` of ``q(x_t | x_0)``."""
        t = torch.as_tensor(t)
        t64 = t.double().clamp(0.0, 1.0)
        s = self.precision
        out = (1.0 - 2.0 * s) * self._f(t64) + s
        return out.to(t.dtype if t.is_floating_point() else torch.get_default_dtype())

    def sigma2(self, t: Tensor) -> Tensor:
        """Noise variance ``1 - alpha_bar(t)``."""
        return 1.0 - self.alpha_bar(t)

    def alpha(self, t: Tensor) -> Tensor:
        """``sqrt(alpha_bar(t))``: the factor on ``x_0`` in ``x_t``."""
        return self.alpha_bar(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        """``sqrt(1 - alpha_bar(t))``: the factor on the noise in ``x_t``."""
        return self.sigma2(t).sqrt()

    def snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio ``alpha_bar / (1 - alpha_bar)``."""
        ab = self.alpha_bar(torch.as_tensor(t).double())
        out = ab / (1.0 - ab)
        return out.to(_float_dtype(t))

    def log_snr(self, t: Tensor) -> Tensor:
        """``log(snr(t))`` (EDM's ``-gamma``)."""
        ab = self.alpha_bar(torch.as_tensor(t).double())
        return (torch.log(ab) - torch.log1p(-ab)).to(_float_dtype(t))

    def beta(self, t: Tensor) -> Tensor:
        """Continuous-time rate ``beta(t) = -d log alpha_bar / dt`` (the VP-SDE drift coefficient)."""
        t_in = torch.as_tensor(t)
        t64 = t_in.double().detach().clone().requires_grad_(True)
        with torch.enable_grad():
            log_ab = torch.log(self.alpha_bar(t64))
            (grad,) = torch.autograd.grad(log_ab.sum(), t64)
        return (-grad).to(_float_dtype(t_in))

    def transition(self, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha_{t|s}, sigma2_{t|s})`` of ``q(x_t | x_s) = N(alpha_{t|s} x_s, sigma2_{t|s} I)`` for ``s <= t``."""
        ratio = self.alpha_bar(torch.as_tensor(t).double()) / self.alpha_bar(torch.as_tensor(s).double())
        dtype = _float_dtype(t)
        return ratio.sqrt().to(dtype), (1.0 - ratio).clamp_min(0.0).to(dtype)

    def discretize(self, n_steps: int) -> "DiscreteSchedule":
        """The discrete chain on ``n_steps`` steps, ``t_k = k / n_steps``."""
        return DiscreteSchedule(self, n_steps)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class CosineSchedule(NoiseSchedule):
    """Cosine schedule of Nichol & Dhariwal (2021): ``f(t) = cos²(π/2 (t + o)/(1 + o)) / cos²(π/2 o/(1 + o))``.

    ``offset`` is their ``s = 0.008``; the end point ``f(1) = 0`` is kept finite by ``precision``.
    """

    name = "cosine"

    def __init__(self, offset: float = 0.008, precision: float = 1e-5):
        super().__init__(precision)
        self.offset = float(offset)

    def _f(self, t: Tensor) -> Tensor:
        o = self.offset
        f0 = math.cos(0.5 * math.pi * o / (1.0 + o)) ** 2
        return (torch.cos(0.5 * math.pi * (t + o) / (1.0 + o)) ** 2 / f0).clamp(0.0, 1.0)


class PolynomialSchedule(NoiseSchedule):
    """EDM's polynomial schedule (Hoogeboom et al. 2022): ``f(t) = (1 - t^power)^2``; ``power=2`` is "polynomial_2"."""

    name = "polynomial"

    def __init__(self, power: float = 2.0, precision: float = 1e-5):
        super().__init__(precision)
        self.power = float(power)

    def _f(self, t: Tensor) -> Tensor:
        return (1.0 - t.pow(self.power)) ** 2


class LinearSchedule(NoiseSchedule):
    """Linear-beta schedule of DDPM (Ho et al. 2020) in continuous time.

    The continuous rate grows linearly, ``beta(t) = beta_min + t (beta_max - beta_min)``, so
    ``f(t) = exp(-(beta_min t + (beta_max - beta_min) t² / 2))``. With ``beta_min=0.1, beta_max=20`` on 1000
    steps this is DDPM's ``beta`` from 1e-4 to 0.02.
    """

    name = "linear"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, precision: float = 1e-5):
        super().__init__(precision)
        if not 0 <= beta_min < beta_max:
            raise ValueError("need 0 <= beta_min < beta_max")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _f(self, t: Tensor) -> Tensor:
        return torch.exp(-(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2))


class ExponentialSchedule(NoiseSchedule):
    """Exponential schedule: the SNR decays exponentially (log-SNR linear in t) from ``snr_max`` to ``snr_min``.

    ``f(t) = sigmoid(log_snr_max + t (log_snr_min - log_snr_max))``, rescaled so ``f(0) = 1`` and ``f(1) = 0``.
    """

    name = "exponential"

    def __init__(self, log_snr_max: float = 10.0, log_snr_min: float = -10.0, precision: float = 1e-5):
        super().__init__(precision)
        if not log_snr_min < log_snr_max:
            raise ValueError("need log_snr_min < log_snr_max")
        self.log_snr_max, self.log_snr_min = float(log_snr_max), float(log_snr_min)

    def _f(self, t: Tensor) -> Tensor:
        g = torch.sigmoid(self.log_snr_max + t * (self.log_snr_min - self.log_snr_max))
        g0, g1 = _sigmoid(self.log_snr_max), _sigmoid(self.log_snr_min)
        return ((g - g1) / (g0 - g1)).clamp(0.0, 1.0)


@dataclass
class DiscreteSchedule:
    """A schedule on the grid ``t_k = k / n_steps``, ``k = 0 .. n_steps``.

    Attributes (float64)
    --------------------
    t : ``[n_steps + 1]`` grid times.
    alpha_bar : ``[n_steps + 1]`` ``alpha_bar(t_k)`` of the continuous schedule.
    betas : ``[n_steps + 1]`` ``beta_k = 1 - alpha_bar_k / alpha_bar_{k-1}`` with ``betas[0] = 1 - alpha_bar_0``
        (= ``s``), so the chain ``x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) eps`` applied for ``k = 0, 1, ..``
        to the clean data has exactly the marginals ``q(x_{t_k} | x_0)`` of the continuous schedule.
    """

    schedule: NoiseSchedule
    n_steps: int

    def __post_init__(self):
        if self.n_steps < 1:
            raise ValueError("n_steps must be >= 1")
        self.t = torch.linspace(0.0, 1.0, self.n_steps + 1, dtype=torch.float64)
        self.alpha_bar = self.schedule.alpha_bar(self.t)
        prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.betas = 1.0 - self.alpha_bar / prev

    def time(self, k: Tensor) -> Tensor:
        """Continuous time ``k / n_steps`` of integer steps ``k`` (float32)."""
        return torch.as_tensor(k).float() / self.n_steps


SCHEDULES = {
    cls.name: cls for cls in (CosineSchedule, PolynomialSchedule, LinearSchedule, ExponentialSchedule)
}


def build_schedule(config: dict | str) -> NoiseSchedule:
    """A schedule from a config: a name, or ``{"name": ..., **parameters}``.

    >>> build_schedule({"name": "polynomial", "power": 2, "precision": 1e-5})
    PolynomialSchedule(precision=1e-05, power=2.0)
    """
    from molgen.errors import ConfigError

    if isinstance(config, str):
        config = {"name": config}
    config = dict(config)
    name = config.pop("name", None)
    if name not in SCHEDULES:
        raise ConfigError(f"noise schedule name {name!r} is not one of {sorted(SCHEDULES)}")
    try:
        return SCHEDULES[name](**config)
    except TypeError as exc:
        raise ConfigError(f"noise schedule {name!r}: {exc}") from None


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _float_dtype(t) -> torch.dtype:
    t = torch.as_tensor(t)
    return t.dtype if t.is_floating_point() else torch.get_default_dtype()
