"""The joint forward process over several fields that share one time per graph.

:class:`JointDiffusion` holds one :class:`~molgen.diffusion.corruptions.Corruption` per field name
(``"pos"``, ``"atom_types"``, ``"charges"``, later ``"bonds"``, ``"frac_pos"``, ``"cell"``) and applies them with the
same ``t`` per graph. It knows nothing about chemistry: fields are named tensors.

Shapes: field values ``[n_atoms, d]``; ``t [n_graphs]``; ``batch [n_atoms]``; ``fixed [n_atoms]`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from molgen.diffusion.corruptions import Corruption

__all__ = ["JointDiffusion", "NoisyFields"]


@dataclass
class NoisyFields:
    """One draw of the forward process: clean ``x0``, noisy ``x_t`` and loss ``targets``, per field name."""

    x0: dict[str, Tensor]
    x_t: dict[str, Tensor]
    targets: dict[str, Tensor]
    t: Tensor  # [n_graphs]


class JointDiffusion:
    """Several corruptions run at a shared time.

    Parameters
    ----------
    corruptions : field name -> corruption (order is kept: it is the order of the network's inputs).
    n_steps : number of discrete steps ``T`` of the chain (``t_k = k / T``).
    time_sampling : ``"discrete"`` draws ``k`` uniformly from ``1..T`` during training (``t = k / T``);
        ``"continuous"`` draws ``t`` uniformly from ``(0, 1]``.
    """

    def __init__(self, corruptions: dict[str, Corruption], n_steps: int = 1000, time_sampling: str = "discrete"):
        if time_sampling not in ("discrete", "continuous"):
            raise ValueError(f"time_sampling must be 'discrete' or 'continuous', got {time_sampling!r}")
        if n_steps < 1:
            raise ValueError("n_steps must be >= 1")
        self.corruptions = dict(corruptions)
        self.n_steps = int(n_steps)
        self.time_sampling = time_sampling

    def __getitem__(self, name: str) -> Corruption:
        return self.corruptions[name]

    def __iter__(self):
        return iter(self.corruptions)

    def items(self):
        return self.corruptions.items()

    def sample_time(self, n_graphs: int, device: torch.device | str = "cpu",
                    generator: torch.Generator | None = None) -> Tensor:
        """Training times ``[n_graphs]`` (float32)."""
        if self.time_sampling == "discrete":
            k = torch.randint(1, self.n_steps + 1, (n_graphs,), generator=generator, device=device)
            return k.float() / self.n_steps
        u = torch.rand(n_graphs, generator=generator, device=device)
        return 1.0 - u  # (0, 1]

    def prepare(self, raw: dict[str, Tensor], batch: Tensor, n_graphs: int,
                fixed: Tensor | None = None) -> dict[str, Tensor]:
        """Raw field values -> process space (centred positions, scaled one-hot, ...)."""
        return {name: c.prepare(raw[name], batch, n_graphs, fixed) for name, c in self.corruptions.items()}

    def finalize(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        """Process space -> raw field values."""
        return {name: c.finalize(x[name]) for name, c in self.corruptions.items()}

    def corrupt(self, x0: dict[str, Tensor], t: Tensor, batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                generator: torch.Generator | None = None) -> NoisyFields:
        """Draw ``x_t ~ q(x_t | x_0)`` for every field at the shared time ``t``."""
        x_t, targets = {}, {}
        for name, corruption in self.corruptions.items():
            x_t[name], targets[name] = corruption.sample_marginal(x0[name], t, batch, n_graphs, fixed, generator)
        return NoisyFields(x0=x0, x_t=x_t, targets=targets, t=t)

    def prior_sample(self, like: dict[str, Tensor], batch: Tensor, n_graphs: int, fixed: Tensor | None = None,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A draw from the limit of every field (fixed atoms keep ``like``'s values, in process space)."""
        return {name: c.prior_sample(like[name], batch, n_graphs, fixed, generator)
                for name, c in self.corruptions.items()}
