"""`explainer planted --seeds N`: which explanations find the truth planted in the ``planted`` dataset?"""

from __future__ import annotations

import argparse
import math
from typing import Any

from explainer.commands._json import print_json
from explainer.commands._options import add_budget_option, add_json_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "planted", help="score every kind of explanation against a planted shortcut, mislabels and object",
        description="Train small CNNs on the planted dataset (seeded), measure how much each uses the shortcut, and "
                    "score pixel attributions, controls and training-data attribution against that truth: a score "
                    "with its 95 % t-interval over seeds and whether it beats its baseline.",
    )
    parser.add_argument("--seeds", type=int, default=5, help="training seeds (default 5; 5 or more to name winners)")
    parser.add_argument("--quick", action="store_true", help="small data and a few methods (about a minute)")
    parser.add_argument("--method", nargs="+", default=None, metavar="METHOD",
                        help="attribution methods (default: all that apply; the controls are always added)")
    parser.add_argument("--timeline", action="store_true",
                        help="also measure reliance and explanations after every epoch of a training run")
    parser.add_argument("--out", default=None, metavar="FILE", help="results file (JSON lines); a rerun resumes")
    parser.add_argument("--backend", default="local", choices=("local", "ray"), help="where units run")
    parser.add_argument("--address", default=None, help="Ray cluster address for --backend ray (default auto)")
    add_budget_option(parser, default=None, what="a run")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _number(value: Any) -> str:
    return f"{value:8.3f}" if isinstance(value, float) and math.isfinite(value) else f"{'–':>8}"


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    from explainer.evidence.planted import planted_benchmark

    report = planted_benchmark(seeds=args.seeds, methods=args.method, quick=args.quick, out=args.out,
                               backend=args.backend, address=args.address, timeline=args.timeline,
                               budget_seconds=args.budget)
    payload = report.to_dict()
    if args.json:
        print_json(payload)
        return 0
    print(f"{'kind':<9} {'method':<24} {'score':>8} {'95 % CI':>19} {'n':>3}  baseline (beats it?)")
    for row in payload["rows"]:
        beats = "" if row["baseline"] is None else f"{row['baseline']} ({'yes' if row['beats_baseline'] else 'no'})"
        print(f"{row['kind']:<9} {row['method']:<24} {_number(row['score'])} {_number(row['ci_low'])} "
              f"{_number(row['ci_high'])} {row['n']:>3}  {beats}")
    print(payload["verdict"])
    print(f"took {payload['seconds']:.1f} s (estimate {payload['estimated_seconds']:.1f} s)")
    return 0
