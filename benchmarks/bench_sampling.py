"""Sampling benchmarks: speed per sampler and step count, quality against the full schedule, guidance strength.

Usage::

    # structures/s on CPU for the QM9 'default' preset (untrained weights: speed does not depend on them)
    python benchmarks/bench_sampling.py speed --preset default --batch-size 100 --threads 2

    # EDM-protocol quality of few-step samplers against ancestral sampling over the full schedule
    python benchmarks/bench_sampling.py quality --checkpoint runs/qm9/checkpoints/last.ckpt -n 1000

    # constraint guidance towards a radius of gyration (exact oracle): strength against error and validity
    python benchmarks/bench_sampling.py constraint --checkpoint molgen/models/qm9/model.ckpt --target 1.7 \
        --strengths 0 1 3 10 30 100 -n 200

    # classifier-free guidance strength against property error and validity (a conditional checkpoint)
    python benchmarks/bench_sampling.py guidance --checkpoint CKPT --property gap --target 5.5 \\
        --scales 0 1 2 4 8 -n 200 --oracle-steps 2000    # qm9 data: gap in eV

    # where along the chain quality is lost: noise real test molecules to chain step k, run the ancestral chain
    # back to 0, and score the result against the originals (EDM protocol, bond-length spread)
    python benchmarks/bench_sampling.py restore --checkpoint molgen/models/qm9/model.ckpt --from-steps 0 10 30 100 300 \
        -n 500 --data qm9 --split test

Every command prints a markdown table (and ``--json OUT`` writes the rows). Seeds are fixed, so a rerun gives the
same samples; timings depend on the machine's load (the script prints ``os.getloadavg()`` next to them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
QM9_SAMPLE = REPO / "data" / "qm9" / "qm9_sample.csv.gz"

DEFAULT_SPEED_GRID = ["ddpm:1000", "ddim:100", "ddim:50", "dpm:100", "dpm:50", "dpm:25", "heun:50", "heun:25"]
DEFAULT_QUALITY_GRID = ["ddpm:full", "ddim:100", "ddim:50", "dpm:100", "dpm:50", "heun:50", "heun:25"]


def load(args):
    from molgen.sampling.model import SamplingModel, load_sampling_model

    if args.checkpoint:
        model = load_sampling_model(args.checkpoint)
        model.precision = args.precision
        return model
    from molgen.data.readers import read_all
    from molgen.data.statistics import StatisticsAccumulator
    from molgen.training.config import load_config
    from molgen.training.module import DiffusionModule

    acc = StatisticsAccumulator(["gap"])
    for record in read_all(QM9_SAMPLE):
        acc.add(record)
    config = load_config(REPO / "configs" / "qm9.yaml", [f"model.preset={args.preset}"])
    torch.manual_seed(0)
    module = DiffusionModule(config, acc.finish().to_dict())
    model = SamplingModel.from_module(module.eval(), name=f"untrained-{args.preset}")
    model.precision = args.precision
    return model


def parse_grid(items):
    """``sampler[:steps[:eta[:spacing]]]`` items -> ``(label, sampler)``; ``steps`` ``full`` or empty: the full
    schedule; empty ``eta`` / ``spacing``: the sampler's defaults (``ddpm:100::uniform``)."""
    from molgen.sampling import build_sampler

    out = []
    for item in items:
        name, steps, eta, spacing = (item.split(":") + ["", "", ""])[:4]
        sampler = build_sampler(name, None if steps in ("", "full") else int(steps), float(eta) if eta else None,
                                spacing or None)
        out.append((item, sampler))
    return out


def table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return (f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs, "
            f"torch threads {torch.get_num_threads()}")


# --- speed -------------------------------------------------------------------------------------------

def cmd_speed(args) -> list[dict]:
    from molgen.sampling import build_sampler, generate_batch
    from molgen.sampling.sizes import size_distribution

    model = load(args)
    sizes = size_distribution(model.statistics).sample(args.batch_size, torch.Generator().manual_seed(0))
    params = sum(p.numel() for p in model.denoiser.parameters())
    print(f"# model {model.name}: {params / 1e6:.2f} M parameters; batch {args.batch_size} molecules, "
          f"{int(sizes.sum())} atoms; {load_line()}")
    rows, per_call = [], None
    for name, sampler in parse_grid(args.grid):
        steps = sampler.steps
        calls = sampler.network_calls(model.process)
        derived = per_call is not None and calls > args.max_calls
        if derived:  # extrapolate from the measured cost of one network call
            seconds = per_call * calls
        else:
            generate_batch(model, sizes[:2], build_sampler("ddim", 2), torch.Generator().manual_seed(0))  # warm-up
            start = time.perf_counter()
            generate_batch(model, sizes, sampler, torch.Generator().manual_seed(1))
            seconds = time.perf_counter() - start
            per_call = seconds / calls if per_call is None else min(per_call, seconds / calls)
        rows.append({"sampler": name, "steps": steps or model.process.n_steps, "network calls": calls,
                     "seconds / batch": seconds, "structures/s": args.batch_size / seconds,
                     "measured": "extrapolated" if derived else "measured"})
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    print(table(rows, list(rows[0])))
    return rows


# --- quality -----------------------------------------------------------------------------------------

def evaluate(records):
    from molgen.validation.molecule_metrics import evaluate_molecules, molecule_from_record

    report = evaluate_molecules([molecule_from_record(r) for r in records], "edm", workers=1)
    m = report.metrics
    return {k: float(m[k]) for k in ("atom_stability", "mol_stability", "validity", "uniqueness") if k in m}


def cmd_quality(args) -> list[dict]:
    from molgen.sampling import generate

    model = load(args)
    print(f"# model {model.name} (step {model.metadata.get('global_step')}), n = {args.n}, seed {args.seed}, "
          f"EDM protocol; {load_line()}")
    rows = []
    for name, sampler in parse_grid(args.grid):
        start = time.perf_counter()
        records = generate(model, args.n, sampler=sampler, batch_size=args.batch_size, seed=args.seed,
                           bonds=False)
        seconds = time.perf_counter() - start
        row = {"sampler": name, "steps": sampler.steps or model.process.n_steps, **evaluate(records),
               "structures/s": args.n / seconds}
        rows.append(row)
        print(table([row], list(row)).splitlines()[-1], flush=True)
    full = next((r for r in rows if r["sampler"] in ("ddpm", "ddpm:full")), None)
    if full is not None and full.get("mol_stability", 0) > 0:
        for r in rows:
            r["mol_stability / ddpm"] = r["mol_stability"] / full["mol_stability"]
    if full is not None and full.get("atom_stability", 0) > 0:
        for r in rows:
            r["atom_stability / ddpm"] = r["atom_stability"] / full["atom_stability"]
    print(table(rows, list(rows[-1])))
    return rows


# --- guidance ----------------------------------------------------------------------------------------

def train_oracle(model, prop: str, steps: int, path: Path | None, seed: int, data: str = "qm9_sample",
                 split: str = "valid", max_held_out: int = 2000):
    """A property predictor used at t = 0 as the oracle (EDM's protocol uses a separately trained property
    classifier in the same way). ``path``: an existing predictor (a ``molgen train`` checkpoint of
    ``task: property_predictor``, e.g. configs/qm9_gap_predictor.yaml with ``predictor.max_time=0.02``, or a
    file saved here); otherwise one is trained here for ``steps`` steps on qm9_sample and saved to ``path``.
    Its own error is printed on ``data``'s ``split`` (held-out structures, at most ``max_held_out``)."""
    from torch_geometric.loader import DataLoader

    from molgen.data.datamodule import TrainingView
    from molgen.data.datasets import open_dataset
    from molgen.sampling.guidance import NoisyPropertyPredictor, load_classifier, train_property_predictor

    if path is not None and path.exists():
        predictor = load_classifier(path, model.fields)
        oracle_error(predictor, model, open_dataset(data), split, max_held_out)
        return predictor
    dataset = open_dataset("qm9_sample")
    torch.manual_seed(seed)
    predictor = NoisyPropertyPredictor(model.fields, [prop], {"hidden_scalars": 64, "hidden_vectors": 16,
                                                              "n_layers": 3, "lmax": 1})
    train = TrainingView(dataset.split("train"))
    loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    # an oracle judges clean structures: train it on low noise only
    losses = train_property_predictor(predictor, loader, steps, lr=1e-3, seed=seed, max_time=0.02)
    print(f"# oracle: {steps} steps in {time.perf_counter() - start:.0f} s, loss {sum(losses[:20]) / 20:.3f} -> "
          f"{sum(losses[-20:]) / 20:.3f} (normalised MSE, t <= 0.02)")
    if path is not None:
        predictor.save(path)
    oracle_error(predictor, model, open_dataset(data), split, max_held_out)
    return predictor


def oracle_error(predictor, model, dataset, split: str = "valid", max_held_out: int = 2000) -> None:
    """The oracle's own error on held-out structures of ``dataset`` (its ``split``), clean (t = 0)."""
    from molgen.data.datamodule import TrainingView

    view = TrainingView(dataset.split(split))
    records = [view[i] for i in range(min(len(view), max_held_out))]
    values = torch.cat([oracle_values(predictor, model, records[i:i + 500]) for i in range(0, len(records), 500)])
    index = predictor.index[0]
    truth = torch.stack([r.y.reshape(-1)[index] for r in records]).float()
    std = float(predictor.std[0])
    print(f"# oracle on {len(records)} held-out molecules ({split} split): "
          f"MAE {float((values - truth).abs().mean()):.3f} "
          f"(dataset std {std:.3f}; predicting the mean gives {float((truth - truth.mean()).abs().mean()):.3f})")


def oracle_values(predictor, model, records) -> torch.Tensor:
    from torch_geometric.data import Batch

    from molgen import keys as K

    batch = Batch.from_data_list([r.clone() for r in records])
    batch[K.POS] = batch[K.POS].float()
    raw = model.fields.raw_fields(batch)
    n = int(batch.num_graphs)
    x0 = model.process.prepare(raw, batch.batch, n)
    with torch.no_grad():
        return predictor.predict(x0, torch.zeros(n), batch.batch, n)[:, 0]


def cmd_guidance(args) -> list[dict]:
    """Guidance strength against the oracle's property error and the EDM metrics. Classifier-free guidance
    (``--scales`` are CFG weights) on a model conditioned on the property; with ``--classifier PREDICTOR``,
    classifier guidance of any model by that noisy-structure predictor (``--scales`` are classifier scales)."""
    from molgen.sampling import generate

    model = load(args)
    if args.classifier is None and args.property not in model.condition_names:
        sys.exit(f"the model is conditioned on {model.condition_names}, not {args.property!r} (or give --classifier)")
    oracle = train_oracle(model, args.property, args.oracle_steps, args.oracle, args.seed, args.oracle_data,
                          args.oracle_split)
    kind = "classifier" if args.classifier is not None else "classifier-free"
    print(f"# model {model.name} (step {model.metadata.get('global_step')}), {kind} guidance, target "
          f"{args.property} = {args.target}, n = {args.n}, sampler {args.sampler}:{args.steps}; {load_line()}")
    target = {args.property: args.target}
    rows = []
    for scale in args.scales:
        if args.classifier is None:
            guided = {"guidance": scale, "condition": target}
        elif scale:
            guided = {"classifier": args.classifier, "classifier_scale": scale, "condition": target}
        else:  # unguided: the model's own (unconditional) samples
            guided = {}
        records = generate(model, args.n, sampler=args.sampler, steps=args.steps, batch_size=args.batch_size,
                           seed=args.seed, bonds=False, **guided)
        values = oracle_values(oracle, model, records)
        row = {"guidance": scale, "MAE (oracle)": float((values - args.target).abs().mean()),
               "mean (oracle)": float(values.mean()), "std (oracle)": float(values.std()), **evaluate(records)}
        rows.append(row)
        print(table([row], list(row)).splitlines()[-1], flush=True)
    print(table(rows, list(rows[0])))
    return rows


# --- constraint guidance --------------------------------------------------------------------------

def radius_of_gyration(pos: torch.Tensor, batch: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """``[n_graphs]`` radius of gyration (Å, unweighted) of ``pos [n_atoms, 3]``."""
    from molgen.diffusion.corruptions import graph_mean

    centred = pos - graph_mean(pos, batch, n_graphs)[batch]
    sq = torch.zeros(n_graphs, dtype=pos.dtype, device=pos.device).index_add_(0, batch, (centred ** 2).sum(-1))
    counts = torch.bincount(batch, minlength=n_graphs).to(pos.dtype)
    return (sq / counts).sqrt()


def cmd_constraint(args) -> list[dict]:
    """Constraint guidance (molgen.sampling.guidance.ConstraintGuidance) towards a radius of gyration.

    The property is computed exactly on the generated structures, so the error is the guidance's alone (no oracle
    error); validity shows where strong guidance starts breaking molecules.
    """
    from molgen.sampling import generate

    model = load(args)
    target = args.target

    def rg_penalty(pos, types, batch):  # [n_graphs] energies; pos in Å
        n_graphs = int(batch.max()) + 1
        return (radius_of_gyration(pos, batch, n_graphs) - target) ** 2

    print(f"# model {model.name} (step {model.metadata.get('global_step')}), target radius of gyration {target} Å, "
          f"n = {args.n}, sampler {args.sampler}:{args.steps}, precision {model.precision}; {load_line()}")
    rows = []
    for strength in args.strengths:
        records = generate(model, args.n, sampler=args.sampler, steps=args.steps, batch_size=args.batch_size,
                           seed=args.seed, constraint=rg_penalty if strength > 0 else None, strength=strength,
                           bonds=False)
        rg = torch.stack([radius_of_gyration(r.pos.double(), torch.zeros(len(r.pos), dtype=torch.long), 1)[0]
                          for r in records])
        finite = torch.isfinite(rg)  # too strong a guidance can blow structures up
        row = {"strength": strength, "MAE Rg (Å)": float((rg[finite] - target).abs().mean()),
               "mean Rg (Å)": float(rg[finite].mean()), "non-finite": int((~finite).sum()), **evaluate(records)}
        rows.append(row)
        print(table([row], list(row)).splitlines()[-1], flush=True)
    print(table(rows, list(rows[0])))
    return rows


# --- restore ----------------------------------------------------------------------------------------

def _chain_from(k0: int):
    """Ancestral sampling over every chain step from ``k0`` down to 0 (the state starts at chain step ``k0``)."""
    from molgen.sampling.samplers import AncestralSampler

    class ChainFromStep(AncestralSampler):
        def grid(self, process):
            return torch.arange(k0, -1, -1, dtype=torch.float64) / process.n_steps  # [k0 + 1], decreasing

    return ChainFromStep(steps=k0)


def clean_state(model, records):
    """``(batch, n_graphs, x0)``: ``records`` as one PyG batch on the model's device and their clean values per
    field in the model's process space (no formal charges in a record: zeros)."""
    from torch_geometric.data import Batch

    from molgen import keys as K

    batch = Batch.from_data_list(records).to(model.device)
    n_graphs = int(batch.num_graphs)
    charges = batch[K.FORMAL_CHARGES] if K.FORMAL_CHARGES in batch else torch.zeros_like(batch.z)
    raw = model.fields.raw_fields({K.POS: batch.pos.float(), K.ATOMIC_NUMBERS: batch.z, K.FORMAL_CHARGES: charges})
    return batch, n_graphs, model.process.prepare(raw, batch.batch, n_graphs, None)


def restore_batch(model, records, k0: int, generator):
    """``records`` (clean structures) noised to chain step ``k0`` of the model's process and carried back to 0 by
    ancestral sampling over every chain step (no network call for ``k0 = 0``); returns restored records."""
    from molgen import keys as K
    from molgen.sampling.model import _records
    from molgen.sampling.samplers import SamplingContext

    fields, process = model.fields, model.process
    batch, n_graphs, x = clean_state(model, records)
    if k0 > 0:
        t = torch.full((n_graphs,), k0 / process.n_steps, device=model.device)
        noisy = process.corrupt(x, t, batch.batch, n_graphs, None, generator).x_t
        x = _chain_from(k0).sample(model, process, noisy, SamplingContext(batch=batch.batch, n_graphs=n_graphs),
                                   generator=generator)
    decoded = fields.decode(process.finalize(x))
    n_atoms = len(batch.z)
    return _records(decoded[K.POS].double().cpu(), decoded[K.ATOMIC_NUMBERS].cpu(), decoded[K.FORMAL_CHARGES].cpu(),
                    torch.zeros(n_atoms, dtype=torch.bool), batch.batch.cpu(), n_graphs, 0, None, [])


def restore_set(model, originals, k0: int, batch_size: int = 100, seed: int = 0) -> list:
    """:func:`restore_batch` over ``originals`` in batches, one generator seeded with ``seed``."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    restored = []
    for start in range(0, len(originals), batch_size):
        restored += restore_batch(model, originals[start:start + batch_size], k0, generator)
    return restored


def bond_spread(records, reference_records) -> float:
    """Bond-length spread (IQR ratio over bonds to H, :mod:`molgen.validation.distributions`) against the originals."""
    from molgen.validation.distributions import compare, molecule_stats
    from molgen.validation.molecule_metrics import molecule_from_record, perceive
    from molgen.validation.protocols import get_protocol

    def stats(recs):
        molecules = [molecule_from_record(r) for r in recs]
        bonds = perceive(molecules, get_protocol("edm")).bonds
        return molecule_stats([m.z for m in molecules], [m.pos for m in molecules], bonds)

    return float(compare(stats(records), stats(reference_records))["bond_length_spread"])


def cmd_restore(args) -> list[dict]:
    from molgen.data.datasets import open_dataset
    from molgen.training.fields import POS

    model = load(args)
    split = open_dataset(args.data, verbose=False).split(args.split)
    originals = [split[i] for i in range(min(args.n, len(split)))]
    rows = []
    for k0 in args.from_steps:
        restored = restore_set(model, originals, k0, args.batch_size, args.seed)
        sigma = float(model.process[POS].coefficients(torch.tensor([k0 / model.process.n_steps]))[1]) if k0 else 0.0
        row = {"from chain step": k0, "position noise sigma": sigma, **evaluate(restored),
               "bond spread vs originals": bond_spread(restored, originals)}
        rows.append(row)
        print(table([row], list(row)).splitlines()[-1], flush=True)
    print(table(rows, list(rows[0])))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "quality", "guidance", "constraint", "restore"):
        p = sub.add_parser(name)
        p.add_argument("--checkpoint", help="a molgen checkpoint (default: an untrained --preset model)")
        p.add_argument("--preset", default="default", help="model preset of the untrained model")
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--batch-size", type=int, default=100)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--json", type=Path)
        p.add_argument("--precision", default="32", choices=("32", "bf16", "16"), help="network precision")
    speed = sub.choices["speed"]
    speed.add_argument("--grid", nargs="+", default=DEFAULT_SPEED_GRID, help="sampler:steps items")
    speed.add_argument("--max-calls", type=int, default=200,
                       help="runs needing more network calls are extrapolated from the measured cost per call")
    quality = sub.choices["quality"]
    quality.add_argument("-n", type=int, default=1000)
    quality.add_argument("--grid", nargs="+", default=DEFAULT_QUALITY_GRID)
    guidance = sub.choices["guidance"]
    guidance.add_argument("-n", type=int, default=200)
    guidance.add_argument("--property", default="gap")
    guidance.add_argument("--target", type=float, default=5.5, help="in dataset units (qm9: gap in eV)")
    guidance.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0, 8.0])
    guidance.add_argument("--sampler", default="dpm")
    guidance.add_argument("--steps", type=int, default=50)
    guidance.add_argument("--oracle", type=Path, help="property predictor file (trained and saved if missing)")
    guidance.add_argument("--oracle-steps", type=int, default=1000)
    guidance.add_argument("--oracle-data", default="qm9_sample", help="dataset whose held-out split scores the oracle")
    guidance.add_argument("--oracle-split", default="valid")
    guidance.add_argument("--classifier", type=Path,
                          help="noisy-structure property predictor: classifier guidance instead of classifier-free")
    constraint = sub.choices["constraint"]
    constraint.add_argument("-n", type=int, default=200)
    constraint.add_argument("--target", type=float, default=1.7, help="radius of gyration in Å")
    constraint.add_argument("--strengths", type=float, nargs="+", default=[0.0, 1.0, 3.0, 10.0, 30.0, 100.0])
    constraint.add_argument("--sampler", default="dpm")
    constraint.add_argument("--steps", type=int, default=50)
    restore = sub.choices["restore"]
    restore.add_argument("-n", type=int, default=500, help="molecules of the split (its first n)")
    restore.add_argument("--from-steps", type=int, nargs="+", default=[0, 10, 30, 100, 300],
                         help="chain steps (of the process's n_steps) to noise to; 0 scores the originals")
    restore.add_argument("--data", default="qm9")
    restore.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    commands = {"speed": cmd_speed, "quality": cmd_quality, "guidance": cmd_guidance, "constraint": cmd_constraint,
                "restore": cmd_restore}
    rows = commands[args.command](args)
    if args.json:
        args.json.write_text(json.dumps({"command": args.command, "rows": rows, "load": load_line()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
