"""The ``explainer`` command. Each subcommand lives in ``explainer/commands/<name>.py``.

A module there exposes ``register(subparsers)``; it is found without an edit here (listed in
:data:`COMMAND_MODULES` order, then by name). Shared flags – ``--model/--arch/--device``,
``--method/--param/--budget``, ``--json`` – come from :mod:`explainer.commands._options`.
Errors (ExplainerError and argparse's usage errors) go to stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from explainer.errors import ExplainerError

#: Subcommand modules, in the order `explainer --help` lists them (others found in the folder follow).
COMMAND_MODULES = (
    "models", "methods", "predict", "explain", "check", "evaluate", "train", "sweep", "transfer", "inside", "dashboard",
)


def command_modules() -> list[str]:
    """Names of the subcommand modules in ``explainer/commands``: :data:`COMMAND_MODULES` order, then by name."""
    import explainer.commands

    found = {info.name for info in pkgutil.iter_modules(explainer.commands.__path__) if not info.name.startswith("_")}
    return [name for name in COMMAND_MODULES if name in found] + sorted(found - set(COMMAND_MODULES))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="explainer",
        description="Open up neural networks: explain predictions, train on a CPU, compare transfer learning.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(f"explainer.commands.{name}").register(subparsers)
    return parser


def print_json(payload: Any) -> None:
    """Write ``payload`` as indented JSON to stdout."""
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; errors go to stderr with exit status 2 (also when called in-process)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error, already printed on stderr (2)
        return exc.code if isinstance(exc.code, int) else 2
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
