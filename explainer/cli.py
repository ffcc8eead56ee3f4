"""The ``explainer`` command. Each subcommand lives in ``explainer/commands/<name>.py``.

A module there exposes ``register(subparsers)``; it is found without an edit here (listed in
:data:`COMMAND_MODULES` order, then by name). Shared flags – ``--model/--arch/--device``,
``--method/--param/--budget``, ``--json`` – come from :mod:`explainer.commands._options`.
Errors (ExplainerError and argparse's usage errors) go to stderr with exit status 2.

Your own methods (``explainer.register_method``) reach the console script through plugins:
modules named in the ``EXPLAINER_PLUGINS`` environment variable (comma-separated) and entry
points of the group ``explainer.plugins`` are imported before the command line is parsed, e.g.
``EXPLAINER_PLUGINS=my_methods explainer explain cat.jpg --method my_method --param k=2``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from explainer.errors import ExplainerError, InputError

#: Environment variable naming modules to import first (comma-separated): where user methods register.
PLUGINS_ENV = "EXPLAINER_PLUGINS"
#: Entry-point group of installed plugin packages (each entry point is loaded, i.e. its module imported).
PLUGINS_GROUP = "explainer.plugins"

#: Subcommand modules, in the order `explainer --help` lists them (others found in the folder follow).
COMMAND_MODULES = (
    "models", "methods", "predict", "explain", "check", "evaluate", "train", "sweep", "transfer", "inside", "dashboard",
)


def command_modules() -> list[str]:
    """Names of the subcommand modules in ``explainer/commands``: :data:`COMMAND_MODULES` order, then by name."""
    import explainer.commands

    found = {info.name for info in pkgutil.iter_modules(explainer.commands.__path__) if not info.name.startswith("_")}
    return [name for name in COMMAND_MODULES if name in found] + sorted(found - set(COMMAND_MODULES))


def load_plugins() -> list[str]:
    """Import the plugin modules (``$EXPLAINER_PLUGINS`` and the ``explainer.plugins`` entry points); their names."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=PLUGINS_GROUP):
        entry.load()
        loaded.append(entry.value)
    for name in (part.strip() for part in os.environ.get(PLUGINS_ENV, "").split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InputError(f"{PLUGINS_ENV} names {name!r}, which cannot be imported ({exc}); put it on "
                             "PYTHONPATH or fix the name.") from None
        loaded.append(name)
    return loaded


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
    """Write ``payload`` as indented, strictly valid JSON to stdout.

    JSON has no NaN or Infinity: a non-finite number becomes ``null`` and the object holding
    it gains ``"null_reasons": {"key": "not finite (nan)"}``, so a reader knows why it is empty.
    numpy/torch values, paths and dataclasses are converted by ``_plumbing.json_ready``.
    """
    from explainer._plumbing import json_ready

    text = json.dumps(json_ready(_explain_nulls(payload)), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _explain_nulls(obj: Any) -> Any:
    """Replace non-finite numbers by None, recording why in the enclosing dict's ``null_reasons``."""
    import math

    import numpy as np

    def reason(value: Any) -> str | None:
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            return f"not finite ({float(value)})"
        if isinstance(value, (list, tuple)) and any(reason(item) for item in value):
            return "holds non-finite values (null)"
        return None

    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)) and getattr(obj, "ndim", None):
        obj = obj.tolist()  # numpy arrays and tensors
    if isinstance(obj, dict):
        cleaned = {key: _explain_nulls(value) for key, value in obj.items()}
        reasons = {str(key): why for key, value in obj.items() if (why := reason(_plain(value)))}
        if reasons:
            cleaned["null_reasons"] = {**cleaned.get("null_reasons", {}), **reasons}
        return cleaned
    if isinstance(obj, (list, tuple)):
        return [_explain_nulls(item) for item in obj]
    if reason(obj):
        return None
    return obj


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; errors go to stderr with exit status 2 (also when called in-process)."""
    try:
        load_plugins()
    except ExplainerError as exc:
        print(f"explainer: error: {exc}", file=sys.stderr)
        return 2
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
