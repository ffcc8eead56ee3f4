"""The CLI vocabulary every subcommand shares: --model/--arch/--random-weights/--device, --method/--param,
--budget, --top-k, --out FILE / --out-dir DIR, --json (``tests/test_vocabulary.py`` holds every command to it).

Use these instead of declaring the flags again (``evaluate``, ``sweep`` and every
other subcommand)::

    from explainer.commands._options import (
        add_json_option, add_method_options, add_model_options, method_params, model_from_args)

    def register(subparsers):
        parser = subparsers.add_parser("evaluate", help="...")
        add_model_options(parser)                       # --model, --arch, --device
        add_method_options(parser, default=["gradcam"])  # --method a b / --method a --method b, --param, --budget
        add_json_option(parser)                         # --json
        parser.set_defaults(func=run)

    def run(args):
        methods, params = method_params(args)   # validated: registry names, {method: {param: value}}
        classifier = model_from_args(args)
        for method in methods:
            explainer.explain(classifier, images, method, budget_seconds=args.budget, **params[method])

``--param NAME=VALUE`` goes to every chosen method that takes NAME (``--param METHOD.NAME=VALUE``
to one method only); the value is parsed and validated by that method's :class:`Param` schema,
so a registered method gets CLI parameters with no edit here. Errors are InputErrors, which
``explainer.cli.main`` prints on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from explainer.attribution.estimate import DEFAULT_BUDGET_SECONDS
from explainer.attribution.registry import get_method, list_methods
from explainer.errors import InputError


def add_model_options(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """``--model SOURCE`` (default: the bundled model), ``--arch NAME`` (a checkpoint's architecture),
    ``--random-weights`` (timm/torchvision models without pretrained weights) and ``--device``."""
    from explainer.models import BUNDLED_MODEL

    default = default or BUNDLED_MODEL
    parser.add_argument("--model", default=default,
                        help=f"model source: bundled name, timm/torchvision name or checkpoint file (default: {default})")
    parser.add_argument("--arch", default=None,
                        help="architecture of a checkpoint file given as --model (when the file does not say), "
                             "e.g. resnet18 (timm) or torchvision:resnet18")
    add_random_weights_option(parser)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the model's device, cuda when available)")


def add_random_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--random-weights``: the architecture without its pretrained weights (wherever a model is loaded)."""
    parser.add_argument("--random-weights", action="store_true",
                        help="timm/torchvision models with random weights instead of the pretrained ones")


def add_top_k_option(parser: argparse.ArgumentParser, *, default: int = 5, old_name: bool = True) -> None:
    """``--top-k K``: how many predictions to show (Python: ``top_k``); ``--top`` is its old, hidden name
    (``old_name=False`` where ``--top`` meant something else)."""
    parser.add_argument("--top-k", type=positive_int("--top-k"), default=default, metavar="K",
                        help=f"how many predicted classes to show (default {default})")
    if old_name:
        add_old_flag(parser, "--top", "--top-k", type=positive_int("--top"), dest="top_k")


def add_out_option(parser: argparse.ArgumentParser, kind: str, *, default: str | None = None, help: str = "") -> None:
    """``--out FILE`` for one output file or ``--out-dir DIR`` for a folder (``kind`` = ``"file"`` | ``"dir"``)."""
    if kind == "file":
        parser.add_argument("--out", default=default, metavar="FILE", help=help or "write the results to FILE")
    elif kind == "dir":
        shown = f" (default: {default})" if default else ""
        parser.add_argument("--out-dir", default=default, metavar="DIR", help=(help or "folder for the files") + shown)
        add_old_flag(parser, "--out", "--out-dir", dest="out_dir")
    else:
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")


def add_budget_option(parser: argparse.ArgumentParser, *, default: float | None = DEFAULT_BUDGET_SECONDS,
                      what: str = "work") -> None:
    """``--budget SECONDS``: refuse ``what`` estimated to take longer (0 = no limit; Python: ``budget_seconds``)."""
    shown = f"default {default:g}" if default else "default: no limit"
    parser.add_argument("--budget", type=_budget, default=default, metavar="SECONDS",
                        help=f"refuse {what} estimated to take longer ({shown}; 0 = no limit)")


def add_old_flag(parser: argparse.ArgumentParser, old: str, new: str, *, dest: str, **options: Any) -> None:
    """A hidden, deprecated spelling ``old`` of ``new``: it still works for one release and says so on stderr."""
    parser.add_argument(old, dest=dest, action=_OldFlag, new=new, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                        **options)


class _OldFlag(argparse.Action):
    """Store the value like the new flag does, with a one-line deprecation note on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(str(option_string), self.new)
        setattr(namespace, self.dest, values)


def positive_int(flag: str) -> Any:
    """An argparse type: a whole number ≥ 1, with errors naming ``flag``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {text!r}")
        return value

    return parse


def layer_list(text: str | None, flag: str = "--layers") -> list[str] | None:
    """Comma-separated layer names (None stays None: the command's default layers)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise InputError(f"{flag} takes comma-separated layer names such as blocks.5,blocks.6; got {text!r}. "
                         "`explainer anatomy --depth 2` lists them.")
    return names


def model_from_args(args: argparse.Namespace) -> Any:
    """The Classifier named by ``--model``/``--arch``/``--device`` (and ``--random-weights`` when declared)."""
    from explainer.models import load_model

    options: dict[str, Any] = {"device": args.device, "arch": args.arch}
    if getattr(args, "random_weights", False):
        options["pretrained"] = False
    return load_model(args.model, **options)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print the results as JSON on stdout."""
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def add_method_options(
    parser: argparse.ArgumentParser, *, default: list[str] | None = None, budget: bool = True
) -> None:
    """``--method M [M ...]`` (repeatable; both spellings add up), ``--param NAME=VALUE`` and ``--budget SECONDS``.

    ``default``: the methods when ``--method`` is not given (stored on the parser, read by
    :func:`method_params`).
    """
    default = list(default or ["integrated_gradients"])
    parser.add_argument(
        "--method", action="extend", nargs="+", default=None, metavar="M",
        help=f"attribution method(s); '--method a b' and '--method a --method b' both work (default: "
             f"{' '.join(default)}). `explainer methods` lists them: {', '.join(list_methods())}",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="method parameter, e.g. n_steps=16 (to every chosen method that takes it) or "
             "integrated_gradients.n_steps=16 (to one); checked against the method's schema",
    )
    if budget:
        add_budget_option(parser, what="an attribution")
    parser.set_defaults(default_methods=default)


def _budget(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget takes seconds (a number; 0 = no limit), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--budget must be at least 0 (0 = no limit), got {text!r}")
    return value or None


def chosen_methods(args: argparse.Namespace) -> list[str]:
    """The ``--method`` names in the order given (repeats dropped), each checked against the registry."""
    names = args.method or getattr(args, "default_methods", None) or ["integrated_gradients"]
    unique = list(dict.fromkeys(names))
    for name in unique:
        get_method(name)  # InputError with close matches and the valid names
    return unique


def method_params(args: argparse.Namespace) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """``(methods, {method: {param: value}})`` from ``--method`` and ``--param``, validated by the registry."""
    methods = chosen_methods(args)
    return methods, parse_params(args.param, methods)


def parse_params(pairs: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """``NAME=VALUE`` (or ``METHOD.NAME=VALUE``) strings → validated parameters per method.

    Each value is parsed by the schema of every method that takes NAME; a NAME no chosen method
    takes, a METHOD that is not chosen, or a value outside the schema is an InputError.
    """
    params: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--param needs NAME=VALUE, got {pair!r} (e.g. --param n_steps=16).")
        scope, dot, name = key.rpartition(".")
        targets = [scope] if dot else methods
        if dot and scope not in methods:
            raise InputError(f"--param {key}: {scope!r} is not one of the chosen methods ({', '.join(methods)}).")
        takers = [m for m in targets if any(p.name == name for p in get_method(m).params)]
        if not takers:
            offered = "; ".join(f"{m}: {', '.join(p.name for p in get_method(m).params) or 'none'}" for m in targets)
            raise InputError(f"--param {name} is not a parameter of {', '.join(targets)} (their parameters – {offered}).")
        for method in takers:
            try:
                params[method][name] = get_method(method).param(name).parse(raw)
            except InputError as exc:
                raise InputError(f"--param {key}={raw} for {method}: {exc}") from None
    return params


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works but will go; use ``new``."""
    print(f"explainer: {old} is deprecated and goes away in 0.5; use {new}.", file=sys.stderr)
