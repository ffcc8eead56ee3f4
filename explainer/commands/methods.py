"""`explainer methods`: the registered attribution methods and their parameters (the --param vocabulary)."""

from __future__ import annotations

import argparse

from explainer.attribution.registry import get_method, list_methods
from explainer.commands._json import print_json
from explainer.commands._options import add_json_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("methods", help="list attribution methods and the parameters --param takes")
    parser.add_argument("names", nargs="*", metavar="METHOD", help="only these methods (default: all)")
    parser.add_argument("--kind", default=None, help="only methods of this kind (gradient, perturbation, cam, ...)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    names = args.names or list_methods(args.kind)
    specs = [get_method(name) for name in names]
    if args.json:
        print_json([spec.to_dict() for spec in specs])
        return 0
    for spec in specs:
        flags = ", ".join(flag for flag, on in (("signed", spec.signed), ("layer", spec.needs_layer)) if on)
        print(f"{spec.name}  ({spec.title}; {spec.kind}{'; ' + flags if flags else ''})")
        print(f"    {spec.description}")
        for param in spec.params:
            print(f"    --param {param.describe()}")
    return 0
