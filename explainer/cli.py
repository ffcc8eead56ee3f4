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
import difflib
import importlib
import importlib.metadata
import os
import pkgutil
import re
import sys
from collections.abc import Sequence

from explainer.commands._json import print_json
from explainer.errors import ExplainerError, InputError

__all__ = ["build_parser", "main", "print_json"]

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; errors go to stderr with exit status 2 (also when called in-process)."""
    try:
        return _main(argv)
    except BrokenPipeError:  # `explainer methods --json | head -5`: the reader left; no traceback
        _silence_stdout()
        return 0


def _main(argv: Sequence[str] | None) -> int:
    try:
        load_plugins()
    except ExplainerError as exc:
        print(f"explainer: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            _unknown_arguments(subcommand_parser(parser, args.command), unknown)
    except SystemExit as exc:  # argparse: --help (0) or a usage error, already printed on stderr (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()
        return status
    except ExplainerError as exc:
        message = cli_syntax(str(exc), subcommand_parser(parser, args.command))
        print(f"explainer {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"explainer {args.command}: interrupted", file=sys.stderr)
        return 130


def subcommand_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


def _unknown_arguments(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Fail with the subcommand's usage and, for a misspelled flag, the closest real one."""
    flags = [option for action in parser._actions for option in action.option_strings
             if option.startswith("--") and action.help != argparse.SUPPRESS]
    hints = []
    for item in unknown:
        name = item.split("=", 1)[0]
        if name.startswith("-"):
            close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6)
            if close:
                hints.append(f"{name}: did you mean {close[0]}?")
    parser.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else "")
                 + f". `{parser.prog} --help` lists the options.")


#: Python keyword arguments whose command-line flag is not simply ``--name-with-dashes``.
PYTHON_TO_FLAG = {"budget_seconds": "--budget", "methods": "--method", "metrics": "--metric", "source": "--model",
                  "n_concepts": "--concepts"}


def cli_syntax(message: str, parser: argparse.ArgumentParser) -> str:
    """A library message rewritten for the command line: ``device='cpu'`` → ``--device cpu``, where the
    subcommand has that flag; ``pretrained=False`` → ``--random-weights``; ``load_model('x', arch=…)`` →
    ``--model x --arch …``."""
    flags = {option for action in parser._actions for option in action.option_strings}
    message = re.sub(r"load_model\((['\"])([^'\"]*)\1(?:,\s*arch=(['\"]?)([^'\")]*)\3)?\)",
                     lambda m: f"--model {m.group(2)}" + (f" --arch {m.group(4)}" if m.group(4) else ""), message)
    if "--random-weights" in flags:
        message = message.replace("pretrained=False", "--random-weights")

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        option = PYTHON_TO_FLAG.get(name, "--" + name.replace("_", "-"))
        if option not in flags or value.rstrip(".,;") in ("None", "True", "False"):
            return match.group(0)
        return f"{option} {value.strip(chr(39) + chr(34))}"

    return re.sub(r"(?<![\w.-])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[\w.:/-]+)", flag, message)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # in-process callers (tests) without a real stdout
        pass


if __name__ == "__main__":
    sys.exit(main())
