"""`explainer models`: known model sources and whether they work offline now."""

from __future__ import annotations

import argparse

from explainer.commands._json import print_json
from explainer.models import list_model_sources


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("models", help="list model sources and whether they load offline now")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    rows = list_model_sources()
    if args.json:
        print_json(rows)
        return 0
    width = max(len(row["source"]) for row in rows)
    for row in rows:
        status = "offline ok" if row["offline"] else "needs network"
        print(f"{row['source']:<{width}}  {row['kind']:<11}  {status:<13}  {row['note']}")
    print("Any timm architecture name also works (pretrained=False needs no weights).")
    return 0
