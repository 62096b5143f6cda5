"""Probe: does a larger reverse variance make few-step ancestral sampling keep more of the full schedule?

Skip-step ancestral sampling (``ddpm`` with 100 steps) draws ``x_s ~ q(x_s | x_t, x0_hat)``: the posterior
variance ``lambda^2`` as if ``x0_hat`` were exact. The Gaussian closest to the true reverse step has more:
``lambda^2 + c0^2 Var(x0 | x_t)`` (``c0``: the posterior mean's ``x0`` coefficient). Bao et al. estimate
``Var(x0 | x_t)`` per time from data: Analytic-DPM (ICLR 2022) as ``sigma_t^2 / alpha_t^2 (1 - E||eps_hat||^2 / d)``,
NPR-DPM (ICML 2022, for an imperfect network) as ``sigma_t^2 / alpha_t^2 E||eps - eps_hat||^2 / d``. The extra
variance grows with the stride, so it matters for few-step grids and vanishes on the full chain.

Two subcommands::

    # the per-time statistics on training molecules, at the grid's times (about 3 CPU minutes for 1,000 molecules)
    python benchmarks/probe_reverse_variance.py table --checkpoint molgen/models/qm9/model.ckpt \\
        -n 1000 --out runs/analytic/table.json
    # sampling with the NPR variance: rank R of W processes writes the batches R, R + W, ... of a `molgen sample`
    # run (-n, --batch-size and --seed as there: the same sizes and prior draws), as XYZ
    python benchmarks/probe_reverse_variance.py sample --checkpoint molgen/models/qm9/model.ckpt \\
        --table runs/analytic/table.json --rank 0 --world 2 -n 10000 --out runs/analytic/npr_r0.xyz

then ``molgen validate`` on the concatenated shards. Results: ``benchmarks/sampling.md`` section 3f.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent / "bench_sampling.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def residual_table(model, records, times: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[dict]:
    """Per time ``t`` and Gaussian field: ``E||eps_hat||^2 / d`` (``gamma``) and ``E||eps - eps_hat||^2 / d``
    (``resid``) over ``records`` noised to ``t``; ``d`` counts the field's free dimensions (positions: 3 (n - 1)
    per molecule, the zero-centre-of-mass subspace)."""
    from molgen.diffusion.corruptions import GaussianCorruption, PositionCorruption
    from molgen.sampling.samplers import SamplingContext, _per_atom, project_positions

    clean_state = _bench().clean_state
    process = model.process
    rows = []
    for t_value in times.tolist():
        sums: dict[str, list[float]] = {}
        for start in range(0, len(records), batch_size):
            batch, n_graphs, x0 = clean_state(model, records[start:start + batch_size])
            t = torch.full((n_graphs,), t_value, dtype=torch.float64)
            x_t = process.corrupt(x0, t, batch.batch, n_graphs, None, generator).x_t
            context = SamplingContext(batch=batch.batch, n_graphs=n_graphs)
            with torch.no_grad():
                prediction = model(x_t, t, context)
            for name, corruption in process.items():
                if not isinstance(corruption, GaussianCorruption):
                    continue
                alpha, sigma = corruption.coefficients(t)
                x0_hat = project_positions(corruption, corruption.predict_x0(prediction[name], x_t[name], t,
                                                                             batch.batch), context)
                a, s = _per_atom(alpha, batch.batch, x0_hat), _per_atom(sigma, batch.batch, x0_hat)
                eps_hat = (x_t[name] - a * x0_hat) / s  # [n_atoms, d]
                eps = (x_t[name] - a * x0[name]) / s
                dims = x0[name].numel() - (3 * n_graphs if isinstance(corruption, PositionCorruption) else 0)
                total = sums.setdefault(name, [0.0, 0.0, 0])
                total[0] += float(eps_hat.double().pow(2).sum())
                total[1] += float((eps - eps_hat).double().pow(2).sum())
                total[2] += dims
        row = {"t": t_value}
        for name, (g, r, d) in sums.items():
            row[f"{name}_gamma"], row[f"{name}_resid"] = g / d, r / d
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def npr_sampler(table: list[dict], steps: int, spacing: str):
    """An ancestral sampler whose step variance is ``lambda^2 + c0^2 sigma_t^2 / alpha_t^2 resid(t)``."""
    from molgen.sampling.samplers import AncestralSampler, _per_atom

    times = torch.tensor([row["t"] for row in table], dtype=torch.float64)
    resid = {key[:-len("_resid")]: torch.tensor([row[key] for row in table], dtype=torch.float64)
             for key in table[0] if key.endswith("_resid")}

    class NPRAncestralSampler(AncestralSampler):
        def update(self, name, corruption, x_t, x0_hat, t, s, i, context, state, generator):
            post = corruption.posterior(x_t, x0_hat, t, s, context.batch, context.fixed)
            ab_t = corruption.schedule.alpha_bar(t.double())
            j = int(torch.argmin((times - float(t[0])).abs()))
            if abs(float(times[j]) - float(t[0])) > 1e-9:
                raise ValueError(f"time {float(t[0])} is not in the table; build it for the same grid")
            extra = post.coef_x0**2 * (1.0 - ab_t) / ab_t * resid[name][j].clamp(0.0, 1.0)  # [n_graphs]
            variance = post.variance + _per_atom(extra, context.batch, x_t)
            # the noise is zero on fixed atoms, so they keep post.mean (= x_t) whatever the variance
            noise = corruption.sample_noise(x_t, context.batch, context.n_graphs, context.fixed, generator)
            return post.mean + variance.sqrt() * noise

    return NPRAncestralSampler(steps=steps, spacing=spacing)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("table", "sample"):
        p = sub.add_parser(name)
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--steps", type=int, default=100)
        p.add_argument("--spacing", default="quadratic")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--out", type=Path, required=True)
    table = sub.choices["table"]
    table.add_argument("-n", type=int, default=1000, help="training molecules")
    table.add_argument("--data", default="qm9")
    sample = sub.choices["sample"]
    sample.add_argument("--table", type=Path, required=True)
    sample.add_argument("-n", type=int, default=10000)
    sample.add_argument("--batch-size", type=int, default=100)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--rank", type=int, default=0)
    sample.add_argument("--world", type=int, default=1)
    args = parser.parse_args(argv)

    from molgen.sampling.model import load_sampling_model
    from molgen.sampling.samplers import SPACINGS

    torch.set_num_threads(args.threads)
    model = load_sampling_model(args.checkpoint)
    model.precision = "bf16"
    if args.command == "table":
        from molgen.data.datasets import open_dataset

        split = open_dataset(args.data, verbose=False).split("train")
        generator = torch.Generator().manual_seed(123)
        chosen = torch.randperm(len(split), generator=generator)[:args.n].tolist()
        times = SPACINGS[args.spacing](args.steps, model.process)[:-1]  # [steps], the grid without t = 0
        rows = residual_table(model, [split[i] for i in chosen], times, 200, generator)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1))
        return 0

    from molgen.export.writers import write_structures
    from molgen.sampling.runner import batch_plan, iter_batches
    from molgen.sampling.sizes import size_distribution

    sampler = npr_sampler(json.loads(args.table.read_text()), args.steps, args.spacing)
    sizes = size_distribution(model.statistics, None)
    indices = range(args.rank, len(batch_plan(args.n, args.batch_size)), args.world)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("")
    start, done = time.time(), 0
    for index, records in iter_batches(model, args.n, args.batch_size, args.seed, sampler, sizes, indices=indices):
        write_structures(records, args.out, append=True)
        done += len(records)
        print(f"rank {args.rank}: batch {index}, {done} structures, {done / (time.time() - start):.2f}/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
