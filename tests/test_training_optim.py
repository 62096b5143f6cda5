"""LR schedules, EMA, time-dependent clipping threshold, gradient finiteness."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from molgen.errors import ConfigError
from molgen.training.optim import clip_threshold, ema_decay, grads_finite, lr_lambda, update_ema


def sched(name, **kw):
    base = {"name": name, "warmup_steps": 0, "min_lr_ratio": 0.0, "gamma": 0.5, "step_size": 10, "total_steps": None}
    base.update(kw)
    return base


def test_warmup_then_constant():
    f = lr_lambda(sched("constant", warmup_steps=4), None)
    assert [f(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_reaches_min_ratio():
    f = lr_lambda(sched("cosine", min_lr_ratio=0.1), total_steps=100)
    values = [f(s) for s in range(0, 101)]
    assert values[0] == pytest.approx(1.0) and values[100] == pytest.approx(0.1) and values[50] == pytest.approx(0.55)
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert f(500) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="total_steps"):
        lr_lambda(sched("cosine"), None)


def test_exponential_and_step():
    f = lr_lambda(sched("exponential", gamma=0.5, step_size=10), None)
    assert f(10) == pytest.approx(0.5) and f(5) == pytest.approx(math.sqrt(0.5))
    g = lr_lambda(sched("step", gamma=0.1, step_size=10), None)
    assert [g(s) for s in (0, 9, 10, 19, 20)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    with pytest.raises(ConfigError, match="linear"):
        lr_lambda(sched("linear"), None)


def test_ema_update_and_decay_warmup():
    model, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    with torch.no_grad():
        for p in ema.parameters():
            p.zero_()
        for p in model.parameters():
            p.fill_(1.0)
    update_ema(ema, model, decay=0.9)
    for p in ema.parameters():
        assert torch.allclose(p, torch.full_like(p, 0.1))
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 10_000) == 0.999
    assert ema_decay(0.999, 0, warmup=False) == 0.999


def test_clip_threshold_inverse_in_snr():
    snrs = [0.1, 1.0, 4.0, 16.0, 100.0, 1e6]
    values = [clip_threshold(torch.tensor([s]), 8.0, snr_ref=1.0, power=0.5, min_factor=0.05) for s in snrs]
    assert values[0] == values[1] == 8.0  # low SNR: the plain threshold
    assert values[2] == pytest.approx(4.0) and values[3] == pytest.approx(2.0)  # 1/sqrt(SNR)
    assert values[-1] == pytest.approx(8.0 * 0.05)  # floor (max_snr caps the batch mean at 1e4 -> 0.01 < 0.05)
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_grads_finite():
    model = nn.Linear(2, 1)
    assert grads_finite(model.parameters())  # no gradients yet
    model(torch.ones(1, 2)).sum().backward()
    assert grads_finite(model.parameters())
    model.weight.grad[0, 0] = float("nan")
    assert not grads_finite(model.parameters())
    model.weight.grad[0, 0] = float("inf")
    assert not grads_finite(model.parameters())
