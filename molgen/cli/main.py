"""Entry point of the ``molgen`` console script.

Each subcommand is a module in :mod:`molgen.cli` with two functions:
``add_parser(subparsers)`` registers its arguments and ``run(args) -> int`` does the work.
User errors (:class:`molgen.errors.MolgenError`) are printed as one line without a traceback
and give exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

from molgen import __version__
from molgen.errors import MolgenError

# subcommand modules, in the order of the help text
COMMANDS = (
    "data",
    "train",
    "sample",
    "validate",
    "screen",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="molgen", description="Diffusion models for 3D molecules, crystals and pockets.")
    parser.add_argument("--version", action="version", version=f"molgen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = import_module(f"molgen.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"molgen.cli.{name}":
                continue  # subcommand not part of this build
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        return int(args.handler(args) or 0)
    except MolgenError as exc:
        print(f"molgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"molgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
