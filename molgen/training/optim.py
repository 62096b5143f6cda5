"""Optimisation helpers: learning-rate schedules, EMA weights, time-dependent gradient clipping.

All three are plain functions / small classes so the Lightning module stays thin and they can be tested alone.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from molgen.errors import ConfigError

__all__ = ["lr_lambda", "update_ema", "ema_decay", "clip_threshold", "grads_finite"]


def lr_lambda(config: dict, total_steps: int | None) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimizer step ``step`` (``torch.optim.lr_scheduler.LambdaLR``).

    ``config`` is ``optim.scheduler``: linear warmup from 0 over ``warmup_steps``, then

    - ``constant``: 1;
    - ``cosine``: half a cosine from 1 down to ``min_lr_ratio`` at ``total_steps`` (then flat);
    - ``exponential``: ``gamma ** ((step - warmup) / step_size)`` (smooth decay by ``gamma`` per ``step_size``);
    - ``step``: ``gamma ** floor((step - warmup) / step_size)``.

    >>> f = lr_lambda({"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.0, "gamma": 0.5,
    ...                "step_size": 1, "total_steps": None}, total_steps=110)
    >>> [round(f(s), 3) for s in (0, 5, 10, 60, 110, 200)]
    [0.1, 0.6, 1.0, 0.5, 0.0, 0.0]
    """
    name = config["name"]
    warmup = int(config.get("warmup_steps") or 0)
    gamma = float(config.get("gamma", 0.5))
    step_size = int(config.get("step_size") or 1)
    min_ratio = float(config.get("min_lr_ratio", 0.0))
    horizon = config.get("total_steps") or total_steps
    if name == "cosine" and not horizon:
        raise ConfigError("optim.scheduler: cosine needs total_steps (or trainer.max_steps / max_epochs)")
    if name not in ("constant", "cosine", "exponential", "step"):
        raise ConfigError(f"config key 'optim.scheduler.name': unknown schedule {name!r}")

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        k = step - warmup
        if name == "constant":
            return 1.0
        if name == "cosine":
            span = max(int(horizon) - warmup, 1)
            progress = min(k / span, 1.0)
            return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if name == "exponential":
            return gamma ** (k / step_size)
        return gamma ** (k // step_size)

    return multiplier


def ema_decay(decay: float, n_updates: int, warmup: bool = True) -> float:
    """EMA decay at the ``n_updates``-th update; with warmup ``min(decay, (1 + n) / (10 + n))`` so early weights
    are not dominated by the random initialisation."""
    if not warmup:
        return decay
    return min(decay, (1.0 + n_updates) / (10.0 + n_updates))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    ema_params = dict(ema.named_parameters())
    for name, param in model.named_parameters():
        ema_params[name].lerp_(param.detach(), 1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, buffer in model.named_buffers():
        ema_buffers[name].copy_(buffer)


def clip_threshold(snr: Tensor, global_norm: float, snr_ref: float = 1.0, power: float = 0.5,
                   min_factor: float = 0.1, max_snr: float = 1e4) -> float:
    """Time-dependent gradient-norm threshold for a batch whose sampled times have signal-to-noise ratios ``snr``.

    ``threshold = global_norm * clamp((snr_ref / mean(min(snr, max_snr)))^power, min_factor, 1)``: it falls
    inversely with the batch's SNR once that exceeds ``snr_ref`` (nearly clean inputs, where the noise target is
    hardest to infer and per-batch gradients are most erratic), and never exceeds the plain global threshold.

    >>> clip_threshold(torch.tensor([0.5, 1.5]), 10.0)
    10.0
    >>> clip_threshold(torch.tensor([100.0]), 10.0)
    1.0
    """
    mean_snr = float(snr.double().clamp(max=max_snr).mean())
    factor = (snr_ref / max(mean_snr, 1e-12)) ** power
    return float(global_norm) * min(max(factor, min_factor), 1.0)


def grads_finite(parameters: Iterable[nn.Parameter]) -> bool:
    """Whether every gradient present is finite (one fused check)."""
    norms = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    if not norms:
        return True
    return bool(torch.isfinite(torch.stack(norms).sum()))
