"""``molgen train CONFIG [key=value ...]``: train a diffusion model from a YAML config.

Dotted overrides change any config key (``trainer.max_steps=50 model.n_layers=2``); an unknown key is an
error that names it. ``--resume`` continues from the last checkpoint in the run's output folder
(``resume=PATH`` from a given one). Multi-GPU / multi-node: ``trainer.devices=4 trainer.num_nodes=2
trainer.strategy=ddp`` (under SLURM, Lightning reads the job's environment).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a diffusion model from a YAML config",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="YAML config file (see configs/)")
    # REMAINDER keeps flags written after the overrides working (`molgen train c.yaml a=1 --resume b=2`)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, metavar="key=value", help="dotted config overrides")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <output_dir>/checkpoints/last.ckpt if it exists (same as resume=auto)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from molgen.training.config import load_config

    overrides = []
    for item in args.overrides:
        if item == "--resume":
            args.resume = True
        elif item == "--print-config":
            args.print_config = True
        elif item.startswith("-"):
            from molgen.errors import ConfigError

            raise ConfigError(f"unknown option {item!r} (overrides are written key=value)")
        else:
            overrides.append(item)
    if args.resume:
        overrides.append("resume=auto")
    config = load_config(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config, sort_keys=False), end="")
        return 0
    from molgen.training.trainer import train

    result = train(config)
    if result.trainer.is_global_zero:
        print(f"molgen train: step {result.trainer.global_step}, checkpoint {result.last_checkpoint}")
    return 0
