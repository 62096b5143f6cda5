"""Samplers against an exact (analytical) denoiser.

If the data are ``x0 ~ N(0, s0^2 I)`` (positions: in the zero-centre-of-mass subspace) the VP process has
``x_t ~ N(0, (ab s0^2 + 1 - ab) I)`` and the exact noise prediction ``E[eps | x_t] = sqrt(1 - ab) x_t / (ab s0^2 +
1 - ab)``, so a correct sampler driven by it must give back samples of variance ``s0^2``. For a categorical field
with independent classes of probability ``p``, the exact ``x0`` posterior is ``p(x0 = k | x_t = j) ∝ p_k (a [j = k]
+ (1 - a) m_j)``, so the sampled class frequencies must be ``p``.
"""

from __future__ import annotations

import pytest
import torch

from molgen.diffusion import CategoricalCorruption, GaussianCorruption, JointDiffusion, PositionCorruption
from molgen.diffusion.schedules import CosineSchedule, PolynomialSchedule
from molgen.sampling.samplers import SAMPLERS, SamplingContext, build_sampler, time_grid

S0_POS, S0_FEAT = 0.5, 2.0


pytestmark = pytest.mark.usefixtures("one_thread")
CLASS_P = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)


class ExactDenoiser:
    """Exact eps / x0-logit predictions for Gaussian data and independent classes."""

    def __init__(self, process: JointDiffusion, scales: dict[str, float]):
        self.process, self.scales, self.calls = process, scales, 0

    def __call__(self, x_t, t, context):
        self.calls += 1
        out = {}
        for name, corruption in self.process.items():
            ab = corruption.schedule.alpha_bar(t.double())[context.batch].unsqueeze(-1).to(x_t[name].dtype)
            if isinstance(corruption, CategoricalCorruption):
                m = corruption.limit.to(x_t[name].dtype)
                like = ab * x_t[name] + (1 - ab) * (x_t[name] * m).sum(-1, keepdim=True)  # q(x_t | x0 = k)
                out[name] = torch.log(CLASS_P.to(x_t[name].dtype) * like)
            else:
                s2 = self.scales[name] ** 2
                out[name] = (1 - ab).sqrt() * x_t[name] / (ab * s2 + 1 - ab)
        return out


def make_process(n_steps=1000, categorical=True, time_sampling="discrete"):
    fields = {"pos": PositionCorruption(PolynomialSchedule()), "feat": GaussianCorruption(CosineSchedule())}
    if categorical:
        fields["cls"] = CategoricalCorruption.uniform(CosineSchedule(), 3)
    return JointDiffusion(fields, n_steps=n_steps, time_sampling=time_sampling)


def prior(process, n_graphs, n_atoms, generator, dtype=torch.float64):
    batch = torch.arange(n_graphs).repeat_interleave(n_atoms)
    like = {"pos": torch.zeros(len(batch), 3, dtype=dtype), "feat": torch.zeros(len(batch), 2, dtype=dtype)}
    if "cls" in process.corruptions:
        like["cls"] = torch.zeros(len(batch), 3, dtype=dtype)
    x = process.prior_sample(like, batch, n_graphs, generator=generator)
    return x, SamplingContext(batch=batch, n_graphs=n_graphs)


def pos_variance(pos, n_graphs, n_atoms):
    # per-coordinate variance in the zero-CoM subspace: 3 (n - 1) degrees of freedom per graph
    return float(pos.pow(2).sum() / (n_graphs * 3 * (n_atoms - 1)))


@pytest.mark.parametrize("name,steps", [("ddpm", None), ("ddim", 50), ("dpm", 50), ("heun", 40)])
def test_samplers_reproduce_data_distribution(name, steps):
    g = torch.Generator().manual_seed(1)
    process = make_process()
    model = ExactDenoiser(process, {"pos": S0_POS, "feat": S0_FEAT})
    n_graphs, n_atoms = 800, 5
    x, ctx = prior(process, n_graphs, n_atoms, g)
    out = build_sampler(name, steps).sample(model, process, x, ctx, generator=g)
    # Monte-Carlo std of a variance estimate from ~9600 / 8000 draws is ~1.5 %
    assert pos_variance(out["pos"], n_graphs, n_atoms) == pytest.approx(S0_POS**2, rel=0.07)
    assert float(out["feat"].var()) == pytest.approx(S0_FEAT**2, rel=0.07)
    # positions stay in the zero-CoM subspace
    com = torch.zeros(n_graphs, 3, dtype=out["pos"].dtype).index_add_(0, ctx.batch, out["pos"]) / n_atoms
    assert com.abs().max() < 1e-9
    freq = out["cls"].mean(0)
    assert torch.allclose(freq, CLASS_P, atol=0.03), freq
    assert model.calls == build_sampler(name, steps).network_calls(process)


def _deterministic_gains(name, steps, process):
    """Deterministic samplers are linear maps ``x_1 -> c x_1`` under the exact denoiser: return ``c^2 / s0^2`` (the
    output variance for a unit-variance prior, relative to the data's) of both Gaussian fields, exactly."""
    model = ExactDenoiser(process, {"pos": S0_POS, "feat": S0_FEAT})
    ctx = SamplingContext(batch=torch.zeros(2, dtype=torch.long), n_graphs=1)
    x = {"pos": torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]], dtype=torch.float64),
         "feat": torch.ones(2, 2, dtype=torch.float64)}
    out = build_sampler(name, steps).sample(model, process, x, ctx)
    return float(out["pos"][0, 0]) ** 2 / S0_POS**2, float(out["feat"][0, 0]) ** 2 / S0_FEAT**2


def test_ode_solvers_converge_to_exact_solution():
    process = make_process(categorical=False, time_sampling="continuous")
    steps = (10, 20, 40, 80)
    err = {name: [[abs(g - 1) for g in _deterministic_gains(name, k, process)] for k in steps]
           for name in ("ddim", "dpm", "heun")}
    for name in err:
        for field in (0, 1):
            assert err[name][-1][field] < err[name][0][field], (name, err[name])  # refining the grid helps
    for field in (0, 1):
        ddim = [e[field] for e in err["ddim"]]
        heun = [e[field] for e in err["heun"]]
        # DDIM is first order (error halves with the step), Heun second order (quarters)
        assert all(1.6 < a / b < 2.6 for a, b in zip(ddim, ddim[1:])), ddim
        assert all(a / b > 3.5 for a, b in zip(heun[1:], heun[2:])), heun
        # at 40 steps (40 network calls) DPM-Solver++ is within 2 %, Heun (79 calls) within 4 %, DDIM is 7 % off
        assert err["dpm"][2][field] < 0.02 and heun[2] < 0.04 and ddim[2] > 0.05, err
        assert err["dpm"][2][field] < ddim[2] / 4


def test_ddim_with_eta_one_is_the_ancestral_step():
    process = make_process(categorical=False)
    model = ExactDenoiser(process, {"pos": S0_POS, "feat": S0_FEAT})
    outs = []
    for sampler in (build_sampler("ddim", 20, eta=1.0), build_sampler("ddpm", 20, spacing="uniform")):
        g = torch.Generator().manual_seed(3)
        x, ctx = prior(process, 50, 4, g)
        outs.append(sampler.sample(model, process, x, ctx, generator=g))
    for name in outs[0]:
        assert torch.allclose(outs[0][name], outs[1][name], atol=1e-9)


def test_stochastic_ddim_reproduces_data_variance():
    # the ancestral step with E[x0 | x_t] in place of x0 drops the variance of x0 given x_t, so it is exact
    # only for small steps: 250 steps here (at 20 steps the variance comes out ~20 % low)
    g = torch.Generator().manual_seed(4)
    process = make_process(categorical=False)
    model = ExactDenoiser(process, {"pos": S0_POS, "feat": S0_FEAT})
    x, ctx = prior(process, 1000, 4, g)
    out = build_sampler("ddim", 250, eta=0.5).sample(model, process, x, ctx, generator=g)
    assert float(out["feat"].var()) == pytest.approx(S0_FEAT**2, rel=0.07)
    assert pos_variance(out["pos"], 1000, 4) == pytest.approx(S0_POS**2, rel=0.07)


def test_same_generator_seed_gives_identical_samples():
    process = make_process()
    model = ExactDenoiser(process, {"pos": S0_POS, "feat": S0_FEAT})
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        x, ctx = prior(process, 4, 3, g, dtype=torch.float32)
        runs.append(build_sampler("ddpm", 30).sample(model, process, x, ctx, generator=g))
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name])


def test_time_grid_snaps_to_training_chain():
    process = make_process(n_steps=1000)
    grid = time_grid(3, process)
    assert grid.tolist() == [1.0, 0.667, 0.333, 0.0]
    with pytest.raises(Exception, match="1000-step chain"):
        time_grid(1001, process)
    assert set(SAMPLERS) == {"ddpm", "ddim", "ode", "dpm", "heun"}


@pytest.mark.parametrize("steps", [1, 7, 50, 100, 999, 1000])
def test_quadratic_grid_on_the_discrete_chain(steps):
    from molgen.sampling.samplers import quadratic_grid

    process = make_process(categorical=False)  # discrete chain
    T = process.n_steps
    if steps > T:
        pytest.skip("chain shorter than the step count")
    k = quadratic_grid(steps, process) * T  # [steps + 1]
    assert len(k) == steps + 1 and k[0] == T and k[-1] == 0
    assert torch.equal(k, torch.round(k)) and bool((k[:-1] > k[1:]).all())  # chain steps, strictly decreasing
    i = torch.arange(steps, -1, -1, dtype=torch.float64)
    assert bool((k >= T * (i / steps) ** 2 - 0.5).all())  # never ahead of the quadratic law
    if steps == T:
        assert torch.equal(k, i)  # the full chain


def test_cubic_grid_is_the_third_power():
    from molgen.sampling.samplers import cubic_grid, power_grid

    process = make_process(categorical=False)
    k = cubic_grid(100, process) * process.n_steps
    assert len(k) == 101 and bool((k[:-1] > k[1:]).all())
    assert torch.equal(k[-32:], torch.arange(31, -1, -1, dtype=torch.float64))  # the last 31 are single chain steps
    assert torch.equal(cubic_grid(100, process), power_grid(100, process, 3.0))
    continuous = make_process(categorical=False, time_sampling="continuous")
    assert torch.allclose(cubic_grid(4, continuous), torch.tensor([1.0, 27 / 64, 1 / 8, 1 / 64, 0.0], dtype=torch.float64))


def test_quadratic_grid_spends_the_steps_at_low_noise():
    from molgen.sampling.samplers import quadratic_grid, time_grid

    process = make_process(categorical=False)
    quad, uniform = quadratic_grid(20, process), time_grid(20, process)
    assert int((quad < 0.25).sum()) >= 2 * int((uniform < 0.25).sum()) > 0
    last = quadratic_grid(100, process)[-12:] * process.n_steps  # 100 of 1,000: the last ten are single chain steps
    assert torch.equal(last, torch.tensor([12.0, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0], dtype=torch.float64))


def test_spacing_defaults_and_errors():
    from molgen.errors import ConfigError

    assert build_sampler("ddpm", 100).spacing == "quadratic"
    assert build_sampler("heun", 10).spacing == "karras"
    assert build_sampler("ddim", 10).spacing == "uniform" and build_sampler("dpm", 10).spacing == "uniform"
    assert "spacing='uniform'" in repr(build_sampler("ddpm", 100, spacing="uniform"))  # recorded for --resume
    with pytest.raises(ConfigError, match="spacing"):
        build_sampler("ddim", 10, spacing="exponential")
