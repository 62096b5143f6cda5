"""The denoiser: E(3) equivariance, permutation equivariance, batching, masks, conditions, scale."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from molgen.errors import ConfigError
from molgen.model import (
    PRESETS,
    DenoiserInput,
    EquivariantDenoiser,
    FullyConnectedGraph,
    RadiusGraph,
    build_denoiser,
    count_parameters,
)

N_FEATURES, N_OUT, N_COND = 6, 5, 2
SIZES = [5, 7, 4]


def _model(graph=None, n_conditions=0, seed=0, **kwargs) -> EquivariantDenoiser:
    torch.manual_seed(seed)
    sizes = dict(hidden_scalars=16, hidden_vectors=8, n_layers=3, n_radial=8)
    sizes.update(kwargs)
    model = EquivariantDenoiser(N_FEATURES, N_OUT, n_conditions, graph=graph, **sizes).double()
    if n_conditions:  # as after training: the condition embedding starts at zero (see the test below)
        torch.nn.init.normal_(model.embed_condition[-1].weight, std=0.3)
    return model


def _inputs(generator, sizes=SIZES, n_conditions=0, fixed=False) -> DenoiserInput:
    batch = torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])
    n = len(batch)
    return DenoiserInput(
        pos=torch.randn(n, 3, generator=generator, dtype=torch.float64) * 1.5,
        node_features=torch.randn(n, N_FEATURES, generator=generator, dtype=torch.float64),
        time=torch.rand(len(sizes), generator=generator, dtype=torch.float64),
        batch=batch,
        n_graphs=len(sizes),
        fixed=(torch.rand(n, generator=generator) < 0.3) if fixed else None,
        condition=torch.randn(len(sizes), n_conditions, generator=generator, dtype=torch.float64)
        if n_conditions
        else None,
    )


def _replace(inputs: DenoiserInput, **changes) -> DenoiserInput:
    fields = dict(vars(inputs))
    fields.update(changes)
    return DenoiserInput(**fields)


GRAPHS = [FullyConnectedGraph(), RadiusGraph(cutoff=2.5)]


@pytest.fixture(autouse=True)
def _one_thread():
    """These graphs are tiny: extra threads only add synchronisation (and stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("graph", GRAPHS, ids=["full", "radius"])
def test_rotation_translation_equivariance(graph, generator):
    model = _model(graph, n_conditions=N_COND)
    inputs = _inputs(generator, n_conditions=N_COND, fixed=True)
    out = model(inputs)
    assert out.vector.abs().max() > 1e-2  # not trivially zero
    for _ in range(3):
        rot = o3.rand_matrix(dtype=torch.float64)
        shift = torch.randn(3, dtype=torch.float64) * 5.0
        moved = model(_replace(inputs, pos=inputs.pos @ rot.T + shift))
        assert (moved.vector - out.vector @ rot.T).abs().max() < 1e-6
        assert (moved.scalar - out.scalar).abs().max() < 1e-6


@pytest.mark.parametrize("graph", GRAPHS, ids=["full", "radius"])
def test_reflection_equivariance_e3(graph, generator):
    """Claim: E(3). A mirror image gives the mirrored vector output (a polar vector) and the same scalars."""
    model = _model(graph)
    inputs = _inputs(generator)
    out = model(inputs)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    for reflection in (mirror, -o3.rand_matrix(dtype=torch.float64)):
        assert torch.det(reflection) < 0
        moved = model(_replace(inputs, pos=inputs.pos @ reflection.T))
        assert (moved.vector - out.vector @ reflection.T).abs().max() < 1e-6
        assert (moved.scalar - out.scalar).abs().max() < 1e-6


def test_permutation_equivariance(generator):
    model = _model()
    inputs = _inputs(generator, n_conditions=0, fixed=True)
    out = model(inputs)
    # permute atoms within each graph (batch stays sorted)
    perm = torch.cat([torch.randperm(n, generator=generator) + start for n, start in zip(SIZES, [0, 5, 12])])
    permuted = _replace(
        inputs, pos=inputs.pos[perm], node_features=inputs.node_features[perm], fixed=inputs.fixed[perm]
    )
    out_p = model(permuted)
    assert torch.allclose(out_p.vector, out.vector[perm], atol=1e-10)
    assert torch.allclose(out_p.scalar, out.scalar[perm], atol=1e-10)


@pytest.mark.parametrize("graph", GRAPHS, ids=["full", "radius"])
def test_same_molecule_alone_and_in_batch(graph, generator):
    model = _model(graph, n_conditions=N_COND)
    inputs = _inputs(generator, n_conditions=N_COND)
    out = model(inputs)
    start = SIZES[0]
    sl = slice(start, start + SIZES[1])  # the middle molecule
    alone = DenoiserInput(
        pos=inputs.pos[sl] + 7.0,  # and somewhere else in space
        node_features=inputs.node_features[sl],
        time=inputs.time[1:2],
        batch=torch.zeros(SIZES[1], dtype=torch.long),
        n_graphs=1,
        condition=inputs.condition[1:2],
    )
    out_alone = model(alone)
    assert torch.allclose(out_alone.vector, out.vector[sl], atol=1e-10)
    assert torch.allclose(out_alone.scalar, out.scalar[sl], atol=1e-10)


def test_fixed_atoms_are_inputs_only(generator):
    model = _model()
    inputs = _inputs(generator, fixed=True)
    assert inputs.fixed.any() and (~inputs.fixed).any()
    out = model(inputs)
    assert torch.all(out.vector[inputs.fixed] == 0)  # the network does not move fixed atoms
    free = model(_replace(inputs, fixed=None))
    # the flag is an input: it changes what the free atoms see
    assert not torch.allclose(free.vector[~inputs.fixed], out.vector[~inputs.fixed])
    # fixed atoms still send messages: moving one changes the free atoms' outputs
    pos = inputs.pos.clone()
    first_fixed = int(inputs.fixed.nonzero()[0])
    pos[first_fixed] += 0.3
    moved = model(_replace(inputs, pos=pos))
    graph = inputs.batch == inputs.batch[first_fixed]
    assert not torch.allclose(moved.vector[graph & ~inputs.fixed], out.vector[graph & ~inputs.fixed])


def test_conditions_and_time_change_the_output(generator):
    model = _model(n_conditions=N_COND)
    inputs = _inputs(generator, n_conditions=N_COND)
    out = model(inputs)
    other = model(_replace(inputs, condition=inputs.condition + 1.0))
    assert (other.vector - out.vector).abs().max() > 1e-4
    assert (other.scalar - out.scalar).abs().max() > 1e-4
    later = model(_replace(inputs, time=inputs.time * 0.5))
    assert (later.vector - out.vector).abs().max() > 1e-4
    with pytest.raises(ValueError, match="condition"):
        model(_replace(inputs, condition=None))
    with pytest.raises(ValueError, match="n_conditions=0"):
        _model()(inputs)


def test_radius_graph_output_is_continuous_across_the_cutoff(generator):
    model = _model(RadiusGraph(cutoff=2.0))
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.2, 0.3, 0.0], [0.0, 1.1, 0.4]], dtype=torch.float64)
    inputs = DenoiserInput(
        pos, torch.randn(3, N_FEATURES, generator=generator, dtype=torch.float64),
        torch.tensor([0.3], dtype=torch.float64), torch.zeros(3, dtype=torch.long), 1,
    )
    outs = []
    for x in (2.0 - 1e-9, 2.0 + 1e-9):  # a fourth atom just inside the first atom's cutoff, then just outside
        p = torch.cat([pos, torch.tensor([[x, 0.0, 0.0]], dtype=torch.float64)])
        feats = torch.cat([inputs.node_features, inputs.node_features[:1]])
        outs.append(model(DenoiserInput(p, feats, inputs.time, torch.zeros(4, dtype=torch.long), 1)))
    assert (outs[0].vector[:3] - outs[1].vector[:3]).abs().max() < 1e-7
    assert outs[0].vector[:3].abs().max() > 1e-2


def test_determinism_same_seed_same_output(generator):
    inputs = _inputs(generator)
    a, b = _model(seed=3)(inputs), _model(seed=3)(inputs)
    assert torch.equal(a.vector, b.vector) and torch.equal(a.scalar, b.scalar)
    c = _model(seed=4)(inputs)
    assert not torch.equal(a.vector, c.vector)


def test_output_scale_is_learnable(generator):
    """The vector output reaches norms ~10 on one input and ~0.1 on another: no magnitude-erasing normalisation."""
    torch.manual_seed(0)
    model = EquivariantDenoiser(N_FEATURES, N_OUT, hidden_scalars=16, hidden_vectors=8, n_layers=2, n_radial=8)
    inputs = _inputs(generator, sizes=[6, 6])
    inputs = DenoiserInput(
        inputs.pos.float(), inputs.node_features.float(), torch.tensor([0.05, 0.95]), inputs.batch, 2
    )
    centred = inputs.pos - torch.stack([inputs.pos[:6].mean(0), inputs.pos[6:].mean(0)])[inputs.batch]
    rms = torch.stack([centred[:6].norm(dim=-1).pow(2).mean(), centred[6:].norm(dim=-1).pow(2).mean()]).sqrt()
    scale = torch.tensor([10.0, 0.1])[inputs.batch, None] / rms[inputs.batch, None]
    target = centred * scale  # equivariant target: rms norm 10 in the first molecule, 0.1 in the second

    def relative_error():
        err = (model(inputs).vector - target).norm(dim=-1) / target.norm(dim=-1)
        return torch.stack([err[:6].mean(), err[6:].mean()])

    start = relative_error().detach()
    optim = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(500):
        loss = (relative_error() ** 2).sum()
        optim.zero_grad()
        loss.backward()
        optim.step()
    final = relative_error().detach()
    assert (start > 0.9).all() and (final < 0.2).all(), (start, final)
    norms = model(inputs).vector.detach().norm(dim=-1)
    assert 8.0 < norms[:6].mean() < 12.0 and 0.08 < norms[6:].mean() < 0.12, norms


def test_build_denoiser_config_and_presets():
    net = build_denoiser(
        {"n_node_features": 6, "n_scalar_outputs": 5, "preset": "small", "n_layers": 2,
         "graph": {"type": "radius", "cutoff": 5.0, "max_neighbors": 24}}
    )
    config = net.config()
    assert config["n_layers"] == 2 and config["hidden_scalars"] == PRESETS["small"]["hidden_scalars"]
    assert isinstance(net.graph, RadiusGraph) and net.graph.max_neighbors == 24
    again = build_denoiser(config)  # the architecture round-trips through its config
    assert count_parameters(again) == count_parameters(net)
    with pytest.raises(ConfigError, match="model.hidden_size"):
        build_denoiser({"n_node_features": 6, "n_scalar_outputs": 5, "hidden_size": 3})
    with pytest.raises(ConfigError, match="model.preset"):
        build_denoiser({"n_node_features": 6, "n_scalar_outputs": 5, "preset": "huge"})
    with pytest.raises(ConfigError, match="model.n_node_features"):
        build_denoiser({"n_scalar_outputs": 5})
    with pytest.raises(ConfigError, match="model.lmax"):
        build_denoiser({"n_node_features": 6, "n_scalar_outputs": 5, "lmax": 3})


def test_count_parameters_counts_trainable():
    net = _model()
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
    net.scalar_head.requires_grad_(False)
    assert count_parameters(net) < count_parameters(net, trainable_only=False)


def test_bfloat16_autocast_matches_float32(generator):
    """Under CPU autocast to bfloat16 the outputs stay within a few per cent of float32, equivariance included."""
    torch.manual_seed(0)
    model = EquivariantDenoiser(N_FEATURES, N_OUT, hidden_scalars=32, hidden_vectors=8, n_layers=3, n_radial=8)
    d = _inputs(generator)
    inputs = DenoiserInput(d.pos.float(), d.node_features.float(), d.time.float(), d.batch, d.n_graphs)
    reference = model(inputs)
    rot = o3.rand_matrix()

    def relative(a, b):
        return ((a.float() - b).norm() / b.norm()).item()

    rotated_inputs = _replace(inputs, pos=inputs.pos @ rot.T)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(inputs)
        rotated = model(rotated_inputs)
    assert out.vector.dtype == torch.float32
    assert relative(out.vector, reference.vector) < 0.05
    assert relative(out.scalar, reference.scalar) < 0.05
    assert relative(rotated.vector @ rot, reference.vector) < 0.05
    loss = out.vector.float().pow(2).mean() + out.scalar.float().pow(2).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_new_condition_embedding_leaves_the_output_unchanged(generator):
    """Zero-initialised output of the condition embedding: fine-tuning an unconditional model with a new
    condition (``init_from``) starts from exactly that model."""
    torch.manual_seed(0)
    model = EquivariantDenoiser(N_FEATURES, N_OUT, N_COND, hidden_scalars=16, hidden_vectors=8, n_layers=2).double()
    inputs = _inputs(generator, n_conditions=N_COND)
    out = model(inputs)
    other = model(_replace(inputs, condition=inputs.condition * -3.0 + 1.0))
    assert torch.equal(out.vector, other.vector) and torch.equal(out.scalar, other.scalar)
