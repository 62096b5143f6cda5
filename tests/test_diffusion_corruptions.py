"""Forward processes: closed forms against Monte Carlo of the chain, posteriors, frames, fixed atoms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from molgen.diffusion import (
    CategoricalCorruption,
    GaussianCorruption,
    JointDiffusion,
    PositionCorruption,
    build_schedule,
    graph_mean,
    weighted_field_loss,
)
from molgen.diffusion.losses import diffusion_loss, graph_average


def replicate(x0: torch.Tensor, copies: int):
    """``copies`` copies of one graph ``x0 [n, d]``: values ``[copies * n, d]``, batch, n_graphs."""
    n = x0.shape[0]
    batch = torch.arange(copies).repeat_interleave(n)
    return x0.repeat(copies, 1), batch, copies


def water(dtype=torch.float64):
    pos = torch.tensor([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]], dtype=dtype)
    return pos - pos.mean(0)


@pytest.mark.parametrize("name", ["polynomial", "cosine"])
def test_closed_form_matches_step_by_step_chain(name, generator):
    """x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) eps, run k = 0..K, against q(x_{t_K} | x_0)."""
    schedule = build_schedule(name)
    corruption = PositionCorruption(schedule)
    T, copies = 40, 20_000
    discrete = schedule.discretize(T)
    x0, batch, n_graphs = replicate(water(), copies)
    n = 3
    for K in (5, 40):
        x = x0.clone()
        for k in range(0, K + 1):
            eps = corruption.sample_noise(x, batch, n_graphs, generator=generator)
            x = (1 - discrete.betas[k]).sqrt() * x + discrete.betas[k].sqrt() * eps
        t = torch.full((n_graphs,), K / T, dtype=torch.float64)
        x_closed, _ = corruption.sample_marginal(x0, t, batch, n_graphs, generator=generator)
        ab = float(discrete.alpha_bar[K])
        # zero-CoM noise has per-component variance (n - 1) / n
        expected_var = (1 - ab) * (n - 1) / n
        for sample in (x, x_closed):
            per_atom = sample.view(copies, n, 3)
            mean, var = per_atom.mean(0), per_atom.var(0)
            tol_mean = 5 * (expected_var / copies) ** 0.5 + 1e-12
            assert torch.allclose(mean, ab**0.5 * water(), atol=tol_mean), (K, mean)
            # variance of a sample variance: 2 var^2 / (copies - 1)
            assert torch.allclose(var, torch.full_like(var, expected_var), atol=5 * expected_var * (2 / copies) ** 0.5 + 1e-12)


def test_generic_gaussian_chain_and_transition(generator):
    """Unprojected field: the transition sampler composes to the marginal (mean and variance)."""
    schedule = build_schedule("cosine")
    corruption = GaussianCorruption(schedule)
    x0, batch, n_graphs = replicate(torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64), 40_000)
    times = torch.tensor([0.0, 0.1, 0.3, 0.6])
    x = corruption.sample_transition(x0, torch.zeros(n_graphs), torch.zeros(n_graphs), batch, n_graphs,
                                     generator=generator)  # identity step (s = t)
    assert torch.equal(x, x0)
    # start from t = 0's marginal, then hop between times
    x, _ = corruption.sample_marginal(x0, torch.zeros(n_graphs, dtype=torch.float64), batch, n_graphs, generator=generator)
    for s, t in zip(times[:-1], times[1:]):
        x = corruption.sample_transition(x, torch.full((n_graphs,), float(s)), torch.full((n_graphs,), float(t)),
                                         batch, n_graphs, generator=generator)
    ab = float(schedule.alpha_bar(torch.tensor(0.6, dtype=torch.float64)))
    assert torch.allclose(x.mean(0), ab**0.5 * x0[0], atol=5 * ((1 - ab) / 40_000) ** 0.5)
    assert torch.allclose(x.var(0), torch.full((3,), 1 - ab, dtype=torch.float64), atol=5 * (1 - ab) * (2 / 40_000) ** 0.5)


def test_posterior_is_weighted_average_with_ddpm_coefficients():
    schedule = build_schedule("polynomial")
    corruption = GaussianCorruption(schedule)
    discrete = schedule.discretize(50)
    k = torch.tensor([1, 7, 25, 50])
    t, s = discrete.t[k], discrete.t[k - 1]
    ab_t, ab_s, beta = discrete.alpha_bar[k], discrete.alpha_bar[k - 1], discrete.betas[k]
    c0, ct, var = corruption.posterior_coefficients(t, s)
    # Ho et al. (2020) eq. 7
    assert torch.allclose(c0, ab_s.sqrt() * beta / (1 - ab_t))
    assert torch.allclose(ct, (1 - beta).sqrt() * (1 - ab_s) / (1 - ab_t))
    assert torch.allclose(var, beta * (1 - ab_s) / (1 - ab_t))
    # the mean returned is that weighted average, per graph
    batch = torch.tensor([0, 0, 1, 2, 2, 3])
    x0 = torch.randn(6, 4, dtype=torch.float64)
    x_t = torch.randn(6, 4, dtype=torch.float64)
    post = corruption.posterior(x_t, x0, t, s, batch)
    assert torch.allclose(post.mean, c0[batch, None] * x0 + ct[batch, None] * x_t)
    assert torch.allclose(post.variance.squeeze(-1), var[batch])


@pytest.mark.parametrize("ts", [(0.3, 0.2), (0.9, 0.5), (0.05, 0.01)])
def test_posterior_matches_bayes_monte_carlo(ts, generator):
    """Draw x_s ~ q(x_s|x_0), x_t ~ q(x_t|x_s); regress x_s on x_t: slope, intercept, residual variance."""
    t_val, s_val = ts
    schedule = build_schedule("cosine")
    corruption = GaussianCorruption(schedule)
    N = 200_000
    x0_value = 0.8
    x0, batch, n_graphs = replicate(torch.tensor([[x0_value]], dtype=torch.float64), N)
    s = torch.full((n_graphs,), s_val, dtype=torch.float64)
    t = torch.full((n_graphs,), t_val, dtype=torch.float64)
    x_s, _ = corruption.sample_marginal(x0, s, batch, n_graphs, generator=generator)
    x_t = corruption.sample_transition(x_s, s, t, batch, n_graphs, generator=generator)
    xs, xt = x_s.squeeze(-1), x_t.squeeze(-1)
    cov = ((xs - xs.mean()) * (xt - xt.mean())).mean()
    slope = cov / xt.var()
    intercept = xs.mean() - slope * xt.mean()
    residual = (xs - intercept - slope * xt).var()
    c0, ct, var = corruption.posterior_coefficients(t[:1], s[:1])
    assert abs(float(slope - ct)) < 0.01
    assert abs(float(intercept - c0 * x0_value)) < 0.01
    assert abs(float(residual / var) - 1) < 0.02


def test_zero_centre_of_mass_preserved(generator):
    corruption = PositionCorruption(build_schedule("polynomial"))
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    n_graphs = 3
    raw = torch.randn(10, 3, generator=generator, dtype=torch.float64) + 5.0
    x0 = corruption.prepare(raw, batch, n_graphs)
    zero = torch.zeros(n_graphs, 3, dtype=torch.float64)
    assert torch.allclose(graph_mean(x0, batch, n_graphs), zero, atol=1e-12)
    t = torch.tensor([0.2, 0.5, 0.99], dtype=torch.float64)
    s = t - 0.1
    x_t, eps = corruption.sample_marginal(x0, t, batch, n_graphs, generator=generator)
    draws = {
        "x_t": x_t, "eps": eps,
        "transition": corruption.sample_transition(x0, s, t, batch, n_graphs, generator=generator),
        "posterior": corruption.sample_posterior(x_t, x0, t, s, batch, n_graphs, generator=generator),
        "ddim": corruption.ddim_step(x_t, x0, t, s, batch, n_graphs, eta=0.0),
        "ddim_stochastic": corruption.ddim_step(x_t, x0, t, s, batch, n_graphs, eta=1.0, generator=generator),
        "prior": corruption.prior_sample(x0, batch, n_graphs, generator=generator),
    }
    for name, value in draws.items():
        assert torch.allclose(graph_mean(value, batch, n_graphs), zero, atol=1e-12), name


def test_fixed_atoms_never_noised(generator):
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    fixed = torch.tensor([True, True, False, False, False, False, False])
    n_graphs = 2
    t = torch.tensor([0.7, 0.4])
    s = torch.tensor([0.5, 0.2])
    raw = torch.randn(7, 3, generator=generator)
    pos = PositionCorruption(build_schedule("cosine"))
    x0 = pos.prepare(raw, batch, n_graphs, fixed)
    # graph 0 is centred on its fixed atoms, graph 1 on its centre of mass
    assert torch.allclose(x0[:2].mean(0), torch.zeros(3), atol=1e-6)
    assert torch.allclose(x0[4:].mean(0), torch.zeros(3), atol=1e-6)
    types = F.one_hot(torch.tensor([0, 1, 2, 0, 1, 1, 3]), 4).float()
    fields = {
        "pos": (pos, x0),
        "gauss": (GaussianCorruption(build_schedule("cosine"), scale=0.25), types * 0.25),
        "categorical": (CategoricalCorruption.uniform(build_schedule("cosine"), 4), types),
    }
    for name, (corruption, clean) in fields.items():
        for _ in range(5):
            x_t, target = corruption.sample_marginal(clean, t, batch, n_graphs, fixed, generator)
            assert torch.equal(x_t[fixed], clean[fixed]), name
            x_s = corruption.sample_posterior(x_t, clean, t, s, batch, n_graphs, fixed, generator)
            assert torch.equal(x_s[fixed], clean[fixed]), name
            x_u = corruption.sample_transition(clean, s, t, batch, n_graphs, fixed, generator)
            assert torch.equal(x_u[fixed], clean[fixed]), name
            prior = corruption.prior_sample(clean, batch, n_graphs, fixed, generator)
            assert torch.equal(prior[fixed], clean[fixed]), name
            if corruption.kind == "gaussian":
                assert torch.equal(target[fixed], torch.zeros_like(target[fixed])), name
                x_d = corruption.ddim_step(x_t, clean, t, s, batch, n_graphs, eta=0.5, fixed=fixed, generator=generator)
                assert torch.equal(x_d[fixed], clean[fixed]), name
    # free atoms of a graph with context get full isotropic noise (no projection): the free atoms' mean moves
    x_t, eps = pos.sample_marginal(x0, torch.tensor([1.0, 1.0]), batch, n_graphs, fixed, generator)
    assert eps[2:4].mean(0).abs().max() > 1e-3
    assert torch.allclose(eps[4:].mean(0), torch.zeros(3), atol=1e-6)


def test_prediction_conversions_and_ddim(generator):
    corruption = GaussianCorruption(build_schedule("cosine"))
    batch = torch.tensor([0, 0, 1])
    x0 = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    t = torch.tensor([0.6, 0.3], dtype=torch.float64)
    s = torch.tensor([0.4, 0.1], dtype=torch.float64)
    x_t, eps = corruption.sample_marginal(x0, t, batch, 2, generator=generator)
    assert torch.allclose(corruption.predict_x0(eps, x_t, t, batch), x0)
    assert torch.allclose(corruption.predict_eps(eps, x_t, t, batch), eps)
    # deterministic DDIM moves along the same noise: x_s = alpha_s x0 + sigma_s eps
    alpha_s, sigma_s = corruption.coefficients(s)
    x_s = corruption.ddim_step(x_t, x0, t, s, batch, 2, eta=0.0)
    assert torch.allclose(x_s, alpha_s[batch, None] * x0 + sigma_s[batch, None] * eps)
    x0_param = GaussianCorruption(build_schedule("cosine"), parameterization="x0")
    assert torch.allclose(x0_param.predict_eps(x0, x_t, t, batch), eps)


def test_stochastic_ddim_is_the_posterior(generator):
    corruption = GaussianCorruption(build_schedule("polynomial"))
    x0, batch, n = replicate(torch.tensor([[0.3, -1.0]], dtype=torch.float64), 100_000)
    t = torch.full((n,), 0.5, dtype=torch.float64)
    s = torch.full((n,), 0.45, dtype=torch.float64)
    x_t = torch.full_like(x0, 0.2)
    draws = corruption.ddim_step(x_t, x0, t, s, batch, n, eta=1.0, generator=generator)
    post = corruption.posterior(x_t[:1], x0[:1], t[:1], s[:1], batch[:1])
    assert torch.allclose(draws.mean(0), post.mean[0], atol=5 * (float(post.variance) / n) ** 0.5)
    assert abs(float(draws.var(0).mean() / post.variance) - 1) < 0.02


def test_categorical_marginal_transition_posterior(generator):
    schedule = build_schedule("cosine")
    limit = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    corruption = CategoricalCorruption(schedule, limit)
    x0, batch, n = replicate(F.one_hot(torch.tensor([1]), 3).double(), 100_000)
    s = torch.full((n,), 0.3, dtype=torch.float64)
    t = torch.full((n,), 0.6, dtype=torch.float64)
    x_s, target = corruption.sample_marginal(x0, s, batch, n, generator=generator)
    assert torch.equal(target, x0)
    x_t = corruption.sample_transition(x_s, s, t, batch, n, generator=generator)
    expected = corruption.marginal_probs(x0[:1], t[:1], batch[:1])[0]
    assert torch.allclose(x_t.mean(0), expected, atol=0.005)
    # Bayes: the empirical distribution of x_s among draws with x_t = class 2 equals the posterior
    chosen = x_t[:, 2] == 1
    empirical = x_s[chosen].mean(0)
    post = corruption.posterior(x_t[chosen][:1], x0[:1], t[:1], s[:1], batch[:1]).probs[0]
    assert torch.allclose(empirical, post, atol=5 * (0.25 / chosen.sum()) ** 0.5)
    # closed form against explicit matrices
    a_t, a_s = schedule.alpha_bar(t[:1]), schedule.alpha_bar(s[:1])
    Q_ts = (a_t / a_s) * torch.eye(3, dtype=torch.float64) + (1 - a_t / a_s) * limit.expand(3, 3)
    Qbar_s = a_s * torch.eye(3, dtype=torch.float64) + (1 - a_s) * limit.expand(3, 3)
    onehot_t = F.one_hot(torch.tensor([2]), 3).double()
    unnorm = (onehot_t @ Q_ts.T) * (x0[:1] @ Qbar_s)
    assert torch.allclose(post, (unnorm / unnorm.sum())[0])
    # prior draws follow the limit distribution
    prior = corruption.prior_sample(x0, batch, n, generator=generator)
    assert torch.allclose(prior.mean(0), limit, atol=0.006)


def test_loss_average_over_atoms_then_graphs():
    # two graphs: 1 atom with loss 4, 3 atoms with loss 1 -> graphs weigh equally: (4 + 1) / 2
    per_atom = torch.tensor([4.0, 1.0, 1.0, 1.0])
    batch = torch.tensor([0, 1, 1, 1])
    per_graph, has_free = graph_average(per_atom, batch, 2)
    assert torch.allclose(per_graph, torch.tensor([4.0, 1.0])) and has_free.all()
    fixed = torch.tensor([True, False, False, True])
    per_graph, has_free = graph_average(torch.tensor([9.0, 1.0, 3.0, 9.0]), batch, 2, fixed)
    assert torch.allclose(per_graph, torch.tensor([0.0, 2.0])) and has_free.tolist() == [False, True]


def test_diffusion_loss_perfect_and_weighted(generator):
    schedule = build_schedule("polynomial")
    process = JointDiffusion({"pos": PositionCorruption(schedule),
                              "types": CategoricalCorruption.uniform(schedule, 3)}, n_steps=100)
    batch = torch.tensor([0, 0, 0, 1, 1])
    raw = {"pos": torch.randn(5, 3, generator=generator), "types": F.one_hot(torch.tensor([0, 1, 2, 2, 0]), 3).float()}

    def oracle(noisy):  # knows the noise and the class
        return {"pos": noisy.targets["pos"], "types": 50.0 * (noisy.x0["types"] - 0.5)}

    out = diffusion_loss(process, oracle, raw, batch, 2, generator=generator)
    assert float(out.fields["pos"]) == 0.0 and float(out.fields["types"]) < 1e-10
    assert out.t.shape == (2,) and ((out.t > 0) & (out.t <= 1)).all()
    assert torch.allclose(out.t * 100, (out.t * 100).round())  # discrete grid

    def zeros(noisy):
        return {k: torch.zeros_like(v) for k, v in noisy.x_t.items()}

    out = diffusion_loss(process, zeros, raw, batch, 2, weights={"pos": 2.0, "types": 0.5}, generator=generator)
    assert torch.allclose(out.loss, 2.0 * out.fields["pos"] + 0.5 * out.fields["types"])
    assert torch.allclose(out.fields["types"], torch.log(torch.tensor(3.0)))
    assert torch.allclose(out.per_graph.mean(), out.loss)
    again = weighted_field_loss(process, zeros(out.noisy), out.noisy, batch, 2, weights={"pos": 2.0, "types": 0.5})
    assert torch.allclose(again.loss, out.loss)
