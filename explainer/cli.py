"""The ``explainer`` command. Each subcommand lives in ``explainer/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from explainer.errors import ExplainerError

#: Subcommand modules, in the order `explainer --help` lists them.
COMMAND_MODULES = ("models", "predict", "explain", "check", "train", "transfer", "inside", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="explainer",
        description="Open up neural networks: explain predictions, train on a CPU, compare transfer learning.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"explainer.commands.{name}").register(subparsers)
    return parser


def print_json(payload: Any) -> None:
    """Write ``payload`` as indented JSON to stdout."""
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; errors go to stderr with exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ExplainerError as exc:
        print(f"explainer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"explainer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
