"""Noise schedules: monotone, right end points, discrete chain consistent with continuous time, EDM values."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.diffusion.schedules import SCHEDULES, PolynomialSchedule, build_schedule
from molgen.errors import ConfigError

NAMES = sorted(SCHEDULES)


@pytest.mark.parametrize("name", NAMES)
def test_monotone_and_end_points(name):
    schedule = build_schedule(name)
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    ab = schedule.alpha_bar(t)
    assert (ab[1:] <= ab[:-1]).all(), "alpha_bar must not increase"
    assert (schedule.log_snr(t)[1:] <= schedule.log_snr(t)[:-1]).all()
    assert ab[0] > 0.9999 and ab[-1] < 1e-4
    assert torch.isfinite(schedule.log_snr(t)).all()
    assert torch.allclose(schedule.snr(t), ab / (1 - ab))
    assert torch.allclose(schedule.sigma2(t) + ab, torch.ones_like(t))


@pytest.mark.parametrize("name", NAMES)
def test_discrete_chain_matches_continuous(name):
    schedule = build_schedule(name)
    discrete = schedule.discretize(100)
    assert torch.allclose(torch.cumprod(1 - discrete.betas, 0), discrete.alpha_bar, rtol=1e-10, atol=0)
    assert torch.allclose(discrete.alpha_bar, schedule.alpha_bar(discrete.t))
    assert (discrete.betas > 0).all() and (discrete.betas <= 1).all()
    # transition between grid points is the ratio of alpha_bars
    a, var = schedule.transition(discrete.t[10:], discrete.t[9:-1])
    assert torch.allclose(var, discrete.betas[10:], atol=1e-12)
    assert torch.allclose(a**2, 1 - discrete.betas[10:], atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_beta_is_derivative_of_log_alpha_bar(name):
    schedule = build_schedule(name)
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    numeric = -(torch.log(schedule.alpha_bar(t + h)) - torch.log(schedule.alpha_bar(t - h))) / (2 * h)
    assert torch.allclose(schedule.beta(t), numeric, rtol=1e-5, atol=1e-6)
    # and, summed over many small steps, the discrete betas follow it
    discrete = schedule.discretize(100_000)
    k = (t * 100_000).round().long()
    assert torch.allclose(discrete.betas[k] * 100_000, schedule.beta(t), rtol=1e-3)


def test_polynomial_matches_edm_formula():
    """EDM's polynomial_2 with s=1e-5 on 1000 steps: (1-2s)(1-(k/T)^2)^2 + s, ratio clip only at the last step."""
    T, s = 1000, 1e-5
    x = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    raw = (1 - x**2) ** 2
    ratio = torch.cat([raw[:1], raw[1:] / raw[:-1]]).clamp(min=0.001)
    edm = (1 - 2 * s) * torch.cumprod(ratio, 0) + s
    ours = PolynomialSchedule(power=2, precision=s).discretize(T).alpha_bar
    assert torch.allclose(ours[:-1], edm[:-1], rtol=1e-9, atol=1e-12)
    assert abs(float(ours[-1] - edm[-1])) < 1e-8  # EDM's ratio clip adds 4e-9 at t=1


def test_float32_in_float32_out():
    schedule = build_schedule("cosine")
    t = torch.rand(7)
    assert schedule.alpha_bar(t).dtype == torch.float32
    assert schedule.log_snr(t).dtype == torch.float32
    assert math.isclose(float(schedule.alpha_bar(torch.tensor(0.5))), float(schedule.alpha_bar(torch.tensor(0.5, dtype=torch.float64))), rel_tol=1e-6)


def test_unknown_schedule_is_config_error():
    with pytest.raises(ConfigError, match="sigmoidal"):
        build_schedule("sigmoidal")
    with pytest.raises(ConfigError, match="polynomial"):
        build_schedule({"name": "polynomial", "degree": 3})
