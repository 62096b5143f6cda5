"""The hand-written equivariant blocks compute what the e3nn modules they stand for compute."""

from __future__ import annotations

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from molgen.model.blocks import EdgeTensorProduct, Gate, VectorLinear, from_e3nn, to_e3nn
from molgen.model.radial import BesselBasis, GaussianBasis, PolynomialEnvelope


@pytest.mark.parametrize("lmax", [1, 2])
def test_edge_tensor_product_equals_e3nn(lmax, generator):
    n_edges, channels = 40, 5
    tp = EdgeTensorProduct(channels, lmax).double()
    reference = o3.TensorProduct(
        tp.irreps_in1, tp.irreps_in2, tp.irreps_out, tp.instructions(), shared_weights=False, internal_weights=False
    ).double()
    assert reference.weight_numel == tp.weight_numel
    s = torch.randn(n_edges, channels, generator=generator, dtype=torch.float64)
    v = torch.randn(n_edges, 3, channels, generator=generator, dtype=torch.float64)
    vec = torch.randn(n_edges, 3, generator=generator, dtype=torch.float64)
    weight = torch.randn(n_edges, tp.weight_numel, generator=generator, dtype=torch.float64)
    unit = vec / vec.norm(dim=-1, keepdim=True)
    sh = o3.spherical_harmonics(tp.irreps_in2, vec, normalize=True, normalization="component")
    expected = reference(to_e3nn(s, v), sh, weight)
    out_s, out_v = tp(s, v, unit, weight)
    assert torch.allclose(to_e3nn(out_s, out_v), expected, atol=1e-12)
    # contract() is the same product with the path weights folded into the weights
    folded = (weight.view(n_edges, tp.n_paths, channels) * tp.coefficients[:, None]).view(n_edges, -1)
    out2_s, out2_v = tp.contract(s, v, unit, folded)
    assert torch.allclose(out2_s, out_s, atol=1e-12) and torch.allclose(out2_v, out_v, atol=1e-12)


def test_layout_round_trip(generator):
    h = torch.randn(4, 3, generator=generator)
    v = torch.randn(4, 3, 2, generator=generator)
    flat = to_e3nn(h, v)
    assert flat.shape == (4, 3 + 6)
    assert torch.equal(flat[:, 3:6], v[:, :, 0])  # e3nn: channel-major, Cartesian x, y, z
    h2, v2 = from_e3nn(flat, 3)
    assert torch.equal(h2, h) and torch.equal(v2, v)


def test_vector_linear_equals_e3nn_linear(generator):
    lin = VectorLinear(6, 4).double()
    reference = o3.Linear("6x1o", "4x1o").double()
    with torch.no_grad():
        reference.weight.copy_(lin.weight.reshape(-1))
    v = torch.randn(7, 3, 6, generator=generator, dtype=torch.float64)
    expected = reference(v.transpose(1, 2).reshape(7, -1))
    assert torch.allclose(lin(v).transpose(1, 2).reshape(7, -1), expected, atol=1e-12)


def test_gate_equals_e3nn_gate(generator):
    gate = Gate(3, 2)
    reference = e3nn_nn.Gate("3x0e", [torch.nn.functional.silu], "2x0e", [torch.sigmoid], "2x1o")
    assert reference.irreps_in == gate.irreps_in.simplify() and reference.irreps_out == gate.irreps_out
    h = torch.randn(5, 3, generator=generator)
    g = torch.randn(5, 2, generator=generator)
    v = torch.randn(5, 3, 2, generator=generator)
    expected = reference(torch.cat([h, g, v.transpose(1, 2).reshape(5, -1)], dim=-1))
    out_h, out_v = gate(h, g, v)
    assert torch.allclose(to_e3nn(out_h, out_v), expected, atol=1e-6)


def test_envelope_vanishes_smoothly_at_cutoff():
    env = PolynomialEnvelope(cutoff=3.0)
    r = torch.tensor([3.0 - 1e-4, 3.0, 3.5], dtype=torch.float64, requires_grad=True)
    out = env(r)
    assert out[0] < 1e-8 and out[1] == 0 and out[2] == 0
    (grad,) = torch.autograd.grad(out.sum(), r)
    assert grad.abs().max() < 1e-6
    assert env(torch.tensor([0.0])).item() == 1.0


def test_bessel_basis_finite_at_zero_and_matches_formula():
    basis = BesselBasis(4, cutoff=5.0).double()
    r = torch.tensor([0.0, 1e-9, 2.0], dtype=torch.float64)
    out = basis(r)
    assert torch.isfinite(out).all()
    k = torch.arange(1, 5, dtype=torch.float64)
    expected = (2 / 5.0) ** 0.5 * torch.sin(k * torch.pi * 2.0 / 5.0) / 2.0
    assert torch.allclose(out[2], expected)
    assert torch.allclose(out[0], out[1])


def test_gaussian_basis_keeps_a_feature_beyond_max_radius():
    basis = GaussianBasis(8, max_radius=5.0)
    far = basis(torch.tensor([20.0, 40.0]))
    assert far[:, :-1].abs().max() < 1e-6  # the Gaussians are gone
    assert far[1, -1] > far[0, -1] > 0.99  # but distance still has a feature (tanh)
