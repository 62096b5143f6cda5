"""``molgen sample``: generate structures with a trained model.

    molgen sample (--checkpoint PATH | --model NAME) -n N -o OUT [--sampler ddpm|ddim|dpm|ode|heun]
                  [--steps K] [--eta E] [--spacing uniform|quadratic|cubic|karras] [--batch-size B] [--seed S] [--num-atoms 18 | 15-20]
                  [--condition gap=6.5 --guidance 2.0]
                  [--classifier PREDICTOR.ckpt --condition gap=6.5 --classifier-scale S] [--fragment FILE [--inpaint replace]] [--resume]
                  [--devices N]

The output format follows OUT's extension: ``.sdf`` (bonds perceived with EDM's distance tables), ``.xyz``,
``.extxyz`` (each optionally ``.gz``). Batches are written as they finish (``OUT.parts/``), so a crash loses at
most one batch; ``--resume`` finishes an interrupted run to N structures without duplicates; the same seed gives
the same file. ``molgen sample --model`` alone lists the shipped models.

Classifier guidance: ``--classifier`` takes a property predictor trained on noisy structures with ``molgen train``
(``task: property_predictor``, the denoiser's ``diffusion`` section; e.g. configs/qm9_gap_predictor.yaml);
``--condition`` gives its targets, ``--classifier-scale`` the strength (default 0.03,
the best measured on QM9; benchmarks/sampling.md 4d). It works with unconditioned
denoisers, and combines with ``--guidance`` for the properties the denoiser is conditioned on.

Several processes: ``--devices N`` spawns N local processes (one GPU each when there are GPUs, else CPU
processes over gloo); across machines launch with ``torchrun --nnodes M --nproc-per-node N -m molgen.cli.main
sample ...`` (or ``srun``). Each rank writes its own batches, rank 0 merges them; the output is the same for
any number of processes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SAMPLER = "dpm"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("sample", help="generate structures with a trained model", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, metavar="PATH", help="a molgen training checkpoint (.ckpt)")
    source.add_argument("--model", nargs="?", const="", metavar="NAME",
                        help="a model shipped with molgen (without NAME: list them)")
    parser.add_argument("-n", type=int, metavar="N", help="number of structures")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="output file (.sdf, .xyz, .extxyz[.gz])")
    parser.add_argument("--sampler", default=DEFAULT_SAMPLER,
                        help=f"ddpm | ddim | dpm (= ode) | heun (default {DEFAULT_SAMPLER})")
    parser.add_argument("--steps", type=int, metavar="K",
                        help="sampling steps (default: full schedule for ddpm, 100 for ddim, 50 for dpm / heun)")
    parser.add_argument("--eta", type=float, help="DDIM stochasticity in [0, 1] (0: deterministic)")
    parser.add_argument("--spacing", choices=("uniform", "quadratic", "cubic", "karras"),
                        help="time grid of a few-step sampler (default: the sampler's; ddpm: quadratic)")
    parser.add_argument("--batch-size", type=int, default=100, metavar="B", help="structures per batch (default 100)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--num-atoms", metavar="N|LOW-HIGH",
                        help="atoms per structure: a value or a range (default: the training histogram)")
    parser.add_argument("--condition", action="append", default=[], metavar="NAME=VALUE",
                        help="property target in dataset units, e.g. gap=6.5 (QM9 gap in eV); repeat for several")
    parser.add_argument("--guidance", type=float, metavar="W",
                        help="classifier-free guidance scale (1: conditional, >1: stronger)")
    parser.add_argument("--classifier", type=Path, metavar="PATH",
                        help="classifier guidance: a property-predictor checkpoint (molgen train with "
                             "task: property_predictor); targets from --condition")
    parser.add_argument("--classifier-scale", type=float, metavar="S",
                        help="classifier-guidance strength (default 0.03, the best measured on QM9; too strong "
                             "degrades structures)")
    parser.add_argument("--fragment", type=Path, metavar="FILE",
                        help="atoms to keep exactly (first structure of the file); --num-atoms then counts all atoms")
    parser.add_argument("--inpaint", choices=("context", "replace"), default="context",
                        help="with --fragment: 'context' for models trained with fixed atoms (pockets, scaffolds), "
                             "'replace' (RePaint-style replacement) for models trained without (default context)")
    parser.add_argument("--resume", action="store_true", help="finish an interrupted run of the same settings")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--devices", type=int, default=1, metavar="N", help="local processes (GPUs) to use")
    parser.add_argument("--device", help="cpu | cuda | cuda:1 (default: a GPU if present)")
    parser.add_argument("--precision", default="32", choices=("32", "bf16", "16"),
                        help="network precision: 32 (float32, default) or bf16 / 16 (autocast; bf16 is ~2x faster "
                             "on CPU, the precision molgen trains in)")
    parser.add_argument("--threads", type=int, metavar="T",
                        help="CPU threads per process (default: torch's; on a busy machine fewer can be much faster)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _conditions(items: list[str]) -> dict[str, float] | None:
    from molgen.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--condition takes NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--condition {name}: {value!r} is not a number") from None
    return out or None


def list_shipped() -> int:
    from molgen.sampling.registry import list_models, models_dir

    models = list_models()
    if not models:
        print(f"no models are shipped in this installation (they live in {models_dir()}/<name>/)")
        return 0
    width = max(len(m.name) for m in models)
    for m in models:
        print(f"{m.name:<{width}}  {m.description}")
    return 0


def run(args: argparse.Namespace) -> int:
    from molgen.errors import ConfigError

    if args.model == "" and args.checkpoint is None:
        return list_shipped()
    if args.checkpoint is None and args.model is None:
        raise ConfigError("give --checkpoint PATH or --model NAME (`molgen sample --model` lists shipped models)")
    if args.n is None or args.output is None:
        raise ConfigError("give the number of structures (-n N) and the output file (-o OUT)")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.guidance is not None and not args.condition:
        raise ConfigError("--guidance needs --condition NAME=VALUE")
    if args.classifier_scale is not None and args.classifier is None:
        raise ConfigError("--classifier-scale needs --classifier PATH")
    if args.classifier is not None and not args.condition:
        raise ConfigError("--classifier needs --condition NAME=VALUE (the classifier's targets)")
    if args.devices < 1:
        raise ConfigError(f"--devices must be >= 1, got {args.devices}")
    from molgen.export.writers import format_of

    format_of(args.output)  # fail on a bad extension before loading anything
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.devices > 1 and not launched:
        from molgen.sampling.distributed import spawn

        spawn(_worker, args.devices, (vars(args),))
        return 0
    return _worker(vars(args))


def _worker(options: dict) -> int:
    from molgen.errors import ConfigError
    from molgen.sampling.api import classifier_setup, make_guidance
    from molgen.sampling.distributed import device_for, init_distributed, shutdown
    from molgen.sampling.guidance import DEFAULT_CLASSIFIER_SCALE
    from molgen.sampling.inpainting import read_fragment
    from molgen.sampling.model import load_sampling_model
    from molgen.sampling.runner import SampleRun
    from molgen.sampling.samplers import build_sampler
    from molgen.sampling.sizes import size_distribution

    args = argparse.Namespace(**options)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ctx = init_distributed()
    try:
        device = device_for(ctx, args.device)
        source = args.checkpoint if args.checkpoint is not None else args.model
        model = load_sampling_model(source, device)
        model.precision = args.precision
        sampler = build_sampler(args.sampler, args.steps, args.eta, args.spacing)
        condition = _conditions(args.condition)
        terms = []
        if args.classifier is not None:
            scale = DEFAULT_CLASSIFIER_SCALE if args.classifier_scale is None else args.classifier_scale
            term, condition = classifier_setup(model, args.classifier, condition, scale)
            terms.append(term)
        if condition is not None:
            model.condition_tensor(condition, 1)  # check names early
        if args.guidance is not None and not model.condition_names:
            raise ConfigError("--guidance: the model was trained without conditioning")
        if args.guidance is not None and condition is None:
            raise ConfigError("--guidance needs --condition values for the model's own properties "
                              f"{model.condition_names}")
        guidance = make_guidance(args.guidance, terms=terms)
        fragment = read_fragment(args.fragment) if args.fragment is not None else None
        sizes = size_distribution(model.statistics, args.num_atoms,
                                  min_atoms=len(fragment) + 1 if fragment is not None else 1)
        settings = {"model": str(source), "model_step": model.metadata.get("global_step"),
                    "guidance": args.guidance}
        if args.precision != "32":  # recorded (and compared on --resume) only when used
            settings["precision"] = args.precision
        if args.classifier is not None:  # recorded (and compared on --resume) only when used
            settings.update(classifier=str(args.classifier), classifier_scale=args.classifier_scale,
                            classifier_condition=_conditions(args.condition))
        run = SampleRun(model=model, sampler=sampler, sizes=sizes, output=args.output, n=args.n,
                        batch_size=args.batch_size, seed=args.seed, condition=condition, guidance=guidance,
                        fixed_atoms=fragment, inpaint=args.inpaint, resume=args.resume, overwrite=args.overwrite,
                        settings=settings,
                        dist=ctx, progress=not args.no_progress)
        result = run.run()
        if ctx.is_main:
            calls = sampler.network_calls(model.process)
            rate = f", {result.structures_per_second:.2f} structures/s" if result.n_generated else ""
            note = "" if result.bonds else " (without bonds: molgen.validation is not available)"
            procs = f", {ctx.world_size} processes" if ctx.world_size > 1 else ""
            print(f"molgen sample: {args.n} structures in {args.output}{note} [{sampler!r}, {calls} network calls "
                  f"per batch{rate}{procs}]", file=sys.stdout)
        return 0
    finally:
        shutdown(ctx)

