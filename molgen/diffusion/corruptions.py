"""Forward processes, one per field, behind one interface.

A field is a per-atom array (``[n_atoms, d]``): Cartesian positions, atom-type one-hot, formal charges; later
fractional coordinates, or per-edge / per-graph fields (bonds, lattice) with their own index. A
:class:`Corruption` owns everything a trainer or a sampler needs to know about the forward process of its field:

- :meth:`Corruption.prepare` / :meth:`Corruption.finalize`: raw values <-> the space the process runs in
  (centring, scaling);
- :meth:`Corruption.sample_marginal`: ``x_t ~ q(x_t | x_0)`` and the target the network learns;
- :meth:`Corruption.sample_transition`: ``x_t ~ q(x_t | x_s)`` for ``s < t`` (one step of the chain);
- :meth:`Corruption.posterior` / :meth:`Corruption.sample_posterior`: ``q(x_s | x_t, x_0)`` for ``s < t``;
- :meth:`Corruption.prior_sample`: a draw from the limit ``q(x_1)``;
- :meth:`Corruption.per_atom_loss`: the training loss of one prediction, per atom.

Every method takes the atoms' graph index ``batch [n_atoms]`` and ``n_graphs``, the time per graph
``t [n_graphs]`` in ``[0, 1]``, and an optional ``fixed [n_atoms]`` mask: fixed (context) atoms are never
noised, and keep their values in every sample drawn here.

Two families:

- :class:`GaussianCorruption`: variance-preserving Gaussian diffusion ``x_t = alpha_t x_0 + sigma_t eps``,
  optionally scaled (EDM's one-hot x 0.25 for atom types). :class:`PositionCorruption` adds the frame of
  positions: per graph the centre of mass is removed and the noise lives in the zero-centre-of-mass subspace
  (translation invariance), unless the graph has fixed atoms, in which case the frame is centred on the
  fixed atoms and the free atoms get plain isotropic noise around it (the context breaks translation symmetry).
- :class:`CategoricalCorruption`: discrete diffusion on classes (D3PM, Austin et al. 2021) with the transition
  ``Q_t = a_t I + (1 - a_t) 1 m^T`` towards a limit distribution ``m`` (uniform, the data marginal as in MiDi,
  or absorbing into a mask class). The network predicts ``x_0`` logits; trained with cross-entropy.

Why both for atom types: the continuous scheme is EDM's proven one, works with every Gaussian sampler (DDPM,
DDIM, probability-flow ODE) without change, and is our default for QM9. Categorical diffusion keeps ``x_t`` on
valid one-hot vectors, which is what MiDi / EQGAT-diff use to reach their higher validity, and it is the natural
process for bonds and formal charges; it plugs into the same loss and module (``kind: categorical`` in the config).

Shapes: values ``[n_atoms, d]``, ``batch [n_atoms]``, ``t [n_graphs]``, ``fixed [n_atoms]`` bool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter

from molgen.diffusion.schedules import NoiseSchedule

__all__ = [
    "Corruption",
    "GaussianCorruption",
    "PositionCorruption",
    "CategoricalCorruption",
    "Posterior",
    "graph_mean",
    "graph_has_fixed",
    "remove_mean",
]


# --- per-graph helpers ------------------------------------------------------------------------

def graph_mean(x: Tensor, batch: Tensor, n_graphs: int, mask: Tensor | None = None) -> Tensor:
    """Mean of ``x [n_atoms, d]`` over each graph's atoms (only ``mask`` atoms when given): ``[n_graphs, d]``.

    Graphs with no selected atom get zeros.
    """
    weight = torch.ones_like(x[:, :1]) if mask is None else mask.to(x.dtype).unsqueeze(-1)
    total = scatter(x * weight, batch, dim=0, dim_size=n_graphs, reduce="sum")
    count = scatter(weight, batch, dim=0, dim_size=n_graphs, reduce="sum")
    return total / count.clamp_min(1.0)


def graph_has_fixed(batch: Tensor, n_graphs: int, fixed: Tensor | None) -> Tensor:
    """``[n_graphs]`` bool: which graphs contain at least one fixed atom."""
    if fixed is None:
        return torch.zeros(n_graphs, dtype=torch.bool, device=batch.device)
    count = scatter(fixed.long(), batch, dim=0, dim_size=n_graphs, reduce="sum")
    return count > 0


def remove_mean(x: Tensor, batch: Tensor, n_graphs: int, mask: Tensor | None = None) -> Tensor:
    """``x`` minus its per-graph mean (over ``mask`` atoms when given): the zero-centre-of-mass projection."""
    return x - graph_mean(x, batch, n_graphs, mask)[batch]


def _per_atom(coef: Tensor, batch: Tensor, like: Tensor) -> Tensor:
    """Per-graph coefficient ``[n_graphs]`` -> ``[n_atoms, 1]`` in the dtype/device of ``like``."""
    return coef.to(device=like.device, dtype=like.dtype)[batch].unsqueeze(-1)


def _keep_fixed(x_new: Tensor, x_old: Tensor, fixed: Tensor | None) -> Tensor:
    if fixed is None:
        return x_new
    return torch.where(fixed.unsqueeze(-1), x_old, x_new)


@dataclass
class Posterior:
    """Parameters of ``q(x_s | x_t, x_0)``.

    Gaussian fields: ``mean [n_atoms, d]``, ``variance [n_atoms, 1]`` (isotropic; 0 for fixed atoms),
    ``coef_x0`` / ``coef_xt`` ``[n_graphs]`` with ``mean = coef_x0 x_0 + coef_xt x_t``.
    Categorical fields: ``probs [n_atoms, K]``.
    """

    mean: Tensor | None = None
    variance: Tensor | None = None
    coef_x0: Tensor | None = None
    coef_xt: Tensor | None = None
    probs: Tensor | None = None


class Corruption(ABC):
    """The forward process of one field.

    Attributes
    ----------
    schedule : the noise schedule of the field.
    kind : ``"gaussian"`` or ``"categorical"``: how a sampler must treat predictions.
    """

    kind: str = "abstract"

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def prepare(self, x: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None) -> Tensor:
        """Raw field values -> the space the process runs in (identity by default)."""
        return x

    def finalize(self, x: Tensor) -> Tensor:
        """Process space -> raw field values (identity by default)."""
        return x

    @abstractmethod
    def sample_marginal(self, x0: Tensor, t: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                        generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t, target)`` with ``x_t ~ q(x_t | x_0)``; ``target`` is what the network's loss compares with
        (the noise ``eps`` for Gaussian fields, ``x_0`` for categorical ones)."""

    @abstractmethod
    def sample_transition(self, x_s: Tensor, s: Tensor, t: Tensor, batch: Tensor, n_graphs: int,
                          fixed: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``x_t ~ q(x_t | x_s)`` for ``s <= t`` (per graph)."""

    @abstractmethod
    def posterior(self, x_t: Tensor, x0: Tensor, t: Tensor, s: Tensor, batch: Tensor,
                  fixed: Tensor | None = None) -> Posterior:
        """``q(x_s | x_t, x_0)`` for ``s < t``."""

    @abstractmethod
    def sample_posterior(self, x_t: Tensor, x0: Tensor, t: Tensor, s: Tensor, batch: Tensor, n_graphs: int,
                         fixed: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """A draw of ``x_s ~ q(x_s | x_t, x_0)``; fixed atoms keep ``x_t``'s values."""

    @abstractmethod
    def prior_sample(self, like: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
        """A draw from the limit distribution, shaped like ``like [n_atoms, d]``; fixed atoms keep ``like``'s values
        (which must then be in process space, see :meth:`prepare`)."""

    @abstractmethod
    def per_atom_loss(self, prediction: Tensor, target: Tensor, x0: Tensor, x_t: Tensor, t: Tensor,
                      batch: Tensor) -> Tensor:
        """Loss ``[n_atoms]`` of the network's raw ``prediction [n_atoms, d]`` against ``target``."""


# --- Gaussian ---------------------------------------------------------------------------------

class GaussianCorruption(Corruption):
    """Variance-preserving Gaussian diffusion ``q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)``.

    Parameters
    ----------
    schedule : noise schedule.
    scale : raw values are multiplied by it in :meth:`prepare` (EDM: 0.25 for one-hot types, 0.1 for charges).
    parameterization : ``"eps"`` (the network predicts the noise) or ``"x0"`` (it predicts the clean values);
        :meth:`predict_x0` / :meth:`predict_eps` convert between them for samplers.
    """

    kind = "gaussian"

    def __init__(self, schedule: NoiseSchedule, scale: float = 1.0, parameterization: str = "eps"):
        super().__init__(schedule)
        if parameterization not in ("eps", "x0"):
            raise ValueError(f"parameterization must be 'eps' or 'x0', got {parameterization!r}")
        self.scale = float(scale)
        self.parameterization = parameterization

    # the noise distribution; PositionCorruption projects it
    def sample_noise(self, like: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise shaped like ``like``, zero on fixed atoms."""
        eps = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        if fixed is not None:
            eps = eps.masked_fill(fixed.unsqueeze(-1), 0.0)
        return eps

    def prepare(self, x, batch, n_graphs, fixed=None):
        return x * self.scale

    def finalize(self, x):
        return x / self.scale

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha_t, sigma_t)`` ``[n_graphs]`` in float64."""
        ab = self.schedule.alpha_bar(t.double())
        return ab.sqrt(), (1.0 - ab).sqrt()

    def sample_marginal(self, x0, t, batch, n_graphs, fixed=None, generator=None):
        alpha, sigma = self.coefficients(t)
        eps = self.sample_noise(x0, batch, n_graphs, fixed, generator)
        x_t = _per_atom(alpha, batch, x0) * x0 + _per_atom(sigma, batch, x0) * eps
        return _keep_fixed(x_t, x0, fixed), eps

    def sample_transition(self, x_s, s, t, batch, n_graphs, fixed=None, generator=None):
        a_ts, var_ts = self.schedule.transition(t.double(), s.double())
        eps = self.sample_noise(x_s, batch, n_graphs, fixed, generator)
        x_t = _per_atom(a_ts, batch, x_s) * x_s + _per_atom(var_ts.sqrt(), batch, x_s) * eps
        return _keep_fixed(x_t, x_s, fixed)

    def posterior_coefficients(self, t: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(coef_x0, coef_xt, variance)`` ``[n_graphs]`` (float64) of ``q(x_s | x_t, x_0)``, ``s < t``.

        With ``alpha_{t|s}^2 = alpha_bar_t / alpha_bar_s`` and ``sigma_{t|s}^2 = 1 - alpha_{t|s}^2``:
        ``mean = alpha_s sigma_{t|s}^2 / sigma_t^2 x_0 + alpha_{t|s} sigma_s^2 / sigma_t^2 x_t`` and
        ``variance = sigma_{t|s}^2 sigma_s^2 / sigma_t^2`` (Ho et al. 2020, eq. 7; Kingma et al. 2021, eq. 26).
        """
        ab_t = self.schedule.alpha_bar(t.double())
        ab_s = self.schedule.alpha_bar(s.double())
        a_ts2 = ab_t / ab_s
        var_ts = 1.0 - a_ts2
        var_t, var_s = 1.0 - ab_t, 1.0 - ab_s
        coef_x0 = ab_s.sqrt() * var_ts / var_t
        coef_xt = a_ts2.sqrt() * var_s / var_t
        return coef_x0, coef_xt, var_ts * var_s / var_t

    def posterior(self, x_t, x0, t, s, batch, fixed=None):
        c0, ct, var = self.posterior_coefficients(t, s)
        mean = _per_atom(c0, batch, x0) * x0 + _per_atom(ct, batch, x_t) * x_t
        mean = _keep_fixed(mean, x_t, fixed)
        variance = _per_atom(var, batch, x_t)
        if fixed is not None:
            variance = variance.masked_fill(fixed.unsqueeze(-1), 0.0)
        return Posterior(mean=mean, variance=variance, coef_x0=c0, coef_xt=ct)

    def sample_posterior(self, x_t, x0, t, s, batch, n_graphs, fixed=None, generator=None):
        post = self.posterior(x_t, x0, t, s, batch, fixed)
        eps = self.sample_noise(x_t, batch, n_graphs, fixed, generator)
        return post.mean + post.variance.sqrt() * eps

    def prior_sample(self, like, batch, n_graphs, fixed=None, generator=None):
        return _keep_fixed(self.sample_noise(like, batch, n_graphs, fixed, generator), like, fixed)

    # --- conversions for samplers --------------------------------------------------------
    def predict_x0(self, prediction: Tensor, x_t: Tensor, t: Tensor, batch: Tensor) -> Tensor:
        """The network's prediction as an ``x_0`` estimate: ``(x_t - sigma_t eps) / alpha_t`` for ``eps``."""
        if self.parameterization == "x0":
            return prediction
        alpha, sigma = self.coefficients(t)
        return (x_t - _per_atom(sigma, batch, x_t) * prediction) / _per_atom(alpha, batch, x_t)

    def predict_eps(self, prediction: Tensor, x_t: Tensor, t: Tensor, batch: Tensor) -> Tensor:
        """The network's prediction as a noise estimate: ``(x_t - alpha_t x_0) / sigma_t`` for ``x0``."""
        if self.parameterization == "eps":
            return prediction
        alpha, sigma = self.coefficients(t)
        return (x_t - _per_atom(alpha, batch, x_t) * prediction) / _per_atom(sigma, batch, x_t)

    def ddim_step(self, x_t: Tensor, x0_hat: Tensor, t: Tensor, s: Tensor, batch: Tensor, n_graphs: int,
                  eta: float = 0.0, fixed: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """One DDIM step ``t -> s`` (Song et al. 2021, eq. 12) from an ``x_0`` estimate.

        ``x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z`` with ``c^2 = eta^2 Var q(x_s|x_t,x_0)``;
        ``eta = 0`` is deterministic DDIM, ``eta = 1`` is the ancestral posterior step ``q(x_s | x_t, x0_hat)``.
        Fixed atoms keep ``x_t``'s values.
        """
        alpha_t, sigma_t = self.coefficients(t)
        alpha_s, sigma_s = self.coefficients(s)
        _, _, post_var = self.posterior_coefficients(t, s)
        c2 = (eta**2) * post_var
        eps_hat = (x_t - _per_atom(alpha_t, batch, x_t) * x0_hat) / _per_atom(sigma_t, batch, x_t)
        direction = (sigma_s**2 - c2).clamp_min(0.0).sqrt()
        x_s = _per_atom(alpha_s, batch, x_t) * x0_hat + _per_atom(direction, batch, x_t) * eps_hat
        if eta > 0:
            x_s = x_s + _per_atom(c2.sqrt(), batch, x_t) * self.sample_noise(x_t, batch, n_graphs, fixed, generator)
        return _keep_fixed(x_s, x_t, fixed)

    def per_atom_loss(self, prediction, target, x0, x_t, t, batch):
        """Mean squared error over the field's components: against the noise (``eps``) or ``x_0`` (``x0``)."""
        reference = target if self.parameterization == "eps" else x0
        return (prediction - reference).pow(2).mean(dim=-1)


class PositionCorruption(GaussianCorruption):
    """Gaussian diffusion of Cartesian positions ``[n_atoms, 3]`` in a translation-free frame.

    Graphs without fixed atoms: positions are centred on their centre of mass (unweighted mean) and the noise is
    projected to the zero-centre-of-mass subspace, so ``x_t`` keeps a zero centre of mass (EDM). Graphs with
    fixed atoms: positions are centred on the centre of the fixed atoms; the free atoms get isotropic noise, the
    fixed atoms are never moved. :meth:`prepare` returns the centred positions; :meth:`frame_origin` gives the
    per-graph origin to add back.
    """

    def __init__(self, schedule: NoiseSchedule, parameterization: str = "eps"):
        super().__init__(schedule, scale=1.0, parameterization=parameterization)

    @staticmethod
    def frame_origin(pos: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None) -> Tensor:
        """``[n_graphs, 3]``: the centre of the fixed atoms where a graph has some, else its centre of mass."""
        centre = graph_mean(pos, batch, n_graphs)
        if fixed is None:
            return centre
        has_fixed = graph_has_fixed(batch, n_graphs, fixed)
        return torch.where(has_fixed.unsqueeze(-1), graph_mean(pos, batch, n_graphs, fixed), centre)

    def prepare(self, x, batch, n_graphs, fixed=None):
        return x - self.frame_origin(x, batch, n_graphs, fixed)[batch]

    def sample_noise(self, like, batch, n_graphs, fixed=None, generator=None):
        eps = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
        projected = remove_mean(eps, batch, n_graphs)
        if fixed is None:
            return projected
        free_graph = ~graph_has_fixed(batch, n_graphs, fixed)
        eps = torch.where(free_graph[batch].unsqueeze(-1), projected, eps)
        return eps.masked_fill(fixed.unsqueeze(-1), 0.0)


# --- categorical ------------------------------------------------------------------------------

class CategoricalCorruption(Corruption):
    """Discrete diffusion on ``K`` classes (D3PM) with one-hot values ``[n_atoms, K]``.

    ``q(x_t | x_0) = Cat(a_t x_0 + (1 - a_t) m)`` with ``a_t = schedule.alpha_bar(t)`` and the limit
    distribution ``m`` (``[K]``). The one-step transition from ``s`` to ``t`` is ``Cat(a_{t|s} x_s +
    (1 - a_{t|s}) m)`` with ``a_{t|s} = a_t / a_s``, and the posterior is

    ``q(x_s | x_t, x_0) ∝ (a_{t|s} x_t + (1 - a_{t|s}) <x_t, m>) ⊙ (a_s x_0 + (1 - a_s) m)``,

    normalised per ``x_0``. For a one-hot ``x_0`` that is exact. Passing class *probabilities* ``p`` computes
    ``normalise(L ⊙ (a_s p + (1 - a_s) m))``, which is NOT the reverse-step mixture ``sum_k p_k q(x_s | x_t, k)``
    (each class has its own normaliser ``Z_k = q(x_t | x_0 = k)``); reweight ``p_k / Z_k`` first
    (``molgen.sampling.samplers.categorical_reverse_probs`` does).

    Parameters
    ----------
    limit : ``[K]`` probabilities (uniform, data marginal, or one-hot on a mask class for absorbing diffusion).
    """

    kind = "categorical"

    def __init__(self, schedule: NoiseSchedule, limit: Tensor):
        super().__init__(schedule)
        limit = torch.as_tensor(limit, dtype=torch.float64)
        if limit.ndim != 1 or (limit < 0).any() or abs(float(limit.sum()) - 1.0) > 1e-6:
            raise ValueError("limit must be a probability vector [K]")
        self.limit = limit
        self.n_classes = limit.numel()

    @classmethod
    def uniform(cls, schedule: NoiseSchedule, n_classes: int) -> "CategoricalCorruption":
        return cls(schedule, torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64))

    def _m(self, like: Tensor) -> Tensor:
        return self.limit.to(device=like.device, dtype=like.dtype)

    def _sample(self, probs: Tensor, generator: torch.Generator | None) -> Tensor:
        index = torch.multinomial(probs.clamp_min(0.0), 1, generator=generator).squeeze(-1)
        return F.one_hot(index, self.n_classes).to(probs.dtype)

    def marginal_probs(self, x0: Tensor, t: Tensor, batch: Tensor) -> Tensor:
        """``[n_atoms, K]`` probabilities of ``q(x_t | x_0)``."""
        a = _per_atom(self.schedule.alpha_bar(t.double()), batch, x0)
        return a * x0 + (1.0 - a) * self._m(x0)

    def sample_marginal(self, x0, t, batch, n_graphs, fixed=None, generator=None):
        x_t = self._sample(self.marginal_probs(x0, t, batch), generator)
        return _keep_fixed(x_t, x0, fixed), x0

    def sample_transition(self, x_s, s, t, batch, n_graphs, fixed=None, generator=None):
        ratio = self.schedule.alpha_bar(t.double()) / self.schedule.alpha_bar(s.double())
        a = _per_atom(ratio, batch, x_s)
        x_t = self._sample(a * x_s + (1.0 - a) * self._m(x_s), generator)
        return _keep_fixed(x_t, x_s, fixed)

    def posterior(self, x_t, x0, t, s, batch, fixed=None):
        a_t = self.schedule.alpha_bar(t.double())
        a_s = self.schedule.alpha_bar(s.double())
        a_ts = _per_atom(a_t / a_s, batch, x_t)
        m = self._m(x_t)
        # likelihood of the observed x_t for each value of x_s: a_ts [x_s = x_t] + (1 - a_ts) m[x_t]
        like_t = a_ts * x_t + (1.0 - a_ts) * (x_t * m).sum(-1, keepdim=True)
        prior_s = _per_atom(a_s, batch, x0) * x0 + (1.0 - _per_atom(a_s, batch, x0)) * m
        probs = like_t * prior_s
        probs = probs / probs.sum(-1, keepdim=True).clamp_min(1e-30)
        return Posterior(probs=_keep_fixed(probs, x_t, fixed))

    def sample_posterior(self, x_t, x0, t, s, batch, n_graphs, fixed=None, generator=None):
        x_s = self._sample(self.posterior(x_t, x0, t, s, batch, fixed).probs, generator)
        return _keep_fixed(x_s, x_t, fixed)

    def prior_sample(self, like, batch, n_graphs, fixed=None, generator=None):
        probs = self._m(like).expand(like.shape[0], -1)
        return _keep_fixed(self._sample(probs, generator), like, fixed)

    def predict_x0(self, prediction: Tensor, x_t: Tensor, t: Tensor, batch: Tensor) -> Tensor:
        """Predicted class probabilities ``[n_atoms, K]`` from the network's logits."""
        return prediction.softmax(dim=-1)

    def per_atom_loss(self, prediction, target, x0, x_t, t, batch):
        """Cross-entropy of the predicted ``x_0`` logits against the true class."""
        return F.cross_entropy(prediction, target.argmax(dim=-1), reduction="none")
