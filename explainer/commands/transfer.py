"""`explainer transfer`: transfer learning vs training from scratch on a few labelled examples per class."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from explainer.commands._json import print_json
from explainer.commands._options import add_budget_option
from explainer.errors import InputError
from explainer.models import BUNDLED_MODEL
from explainer.run import BACKENDS
from explainer.stats import MIN_SAMPLES
from explainer.transfer import DEFAULT_LR, DEFAULT_SHOTS, STRATEGIES, TransferResults, compare_transfer

if TYPE_CHECKING:
    import pandas as pd


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "transfer", help="compare transfer learning with training from scratch on 1–50 examples per class"
    )
    parser.add_argument(
        "--dataset", default="textures", help="textures, digits, cifar10 or imagefolder:PATH (default textures)"
    )
    parser.add_argument("--model", default=BUNDLED_MODEL, help=f"pretrained timm backbone (default {BUNDLED_MODEL})")
    parser.add_argument("--backbone", dest="model", help=argparse.SUPPRESS)  # the old name of --model
    parser.add_argument(
        "--shots", nargs="+", default=[",".join(map(str, DEFAULT_SHOTS))], metavar="N",
        help=f"labelled examples per class: --shots 1 5 20 or --shots 1,5,20 (default {','.join(map(str, DEFAULT_SHOTS))})",
    )
    parser.add_argument("--seeds", type=int, default=MIN_SAMPLES,
                        help=f"samples per shot level (default {MIN_SAMPLES}: the fewest that can name a winner)")
    parser.add_argument(
        "--strategies", nargs="+", default=[",".join(STRATEGIES)], metavar="NAME",
        help=f"space- or comma-separated, from: {', '.join(STRATEGIES)} (default: all of them)",
    )
    parser.add_argument(
        "--steps", type=int, default=100,
        help="Adam steps of fine_tune, scratch and small_cnn (default 100; the search tries ×1 and ×0.5)"
    )
    parser.add_argument(
        "--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate of fine_tune and scratch (default {DEFAULT_LR:g})"
    )
    parser.add_argument("--image-size", type=int, default=64, help="input size in pixels (default 64)")
    parser.add_argument(
        "--out", default=None, metavar="FILE", help="stream results to FILE (.jsonl); the same command again resumes"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="where runs go: local or ray (default local)")
    parser.add_argument("--address", default=None, help="Ray cluster address for --backend ray (default: auto)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add_budget_option(parser, default=None, what="a study")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def split_words(values: list[str] | str) -> list[str]:
    """``["1,2", "5"]`` → ``["1", "2", "5"]``: both spellings (spaces or commas) add up."""
    items = [values] if isinstance(values, str) else values
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def parse_shots(values: list[str] | str) -> list[int]:
    """'1,5,20' or ['1', '5', '20'] → [1, 5, 20]; anything else raises InputError naming the bad part."""
    parts = split_words(values)
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        shown = values if isinstance(values, str) else " ".join(values)
        raise InputError(f"--shots must be whole numbers of at least 1, like 1 5 20 or 1,5,20; got {shown!r}.")
    return [int(part) for part in parts]


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    shots = parse_shots(args.shots)
    strategies = split_words(args.strategies)
    results = compare_transfer(
        args.dataset, args.model, shots=shots, seeds=args.seeds, strategies=strategies,
        image_size=args.image_size, steps=args.steps, out=args.out, progress=True, device=args.device,
        lr=args.lr, backend=args.backend, address=args.address, budget_seconds=args.budget,
    )
    if args.json:
        print_json(results.to_dict())
        return 0
    print(format_table(results))
    print()
    print(results.verdict())
    resumed = f" ({results.resumed} read back from {results.out})" if results.resumed else ""
    print(f"\n{len(results.table)} runs{resumed} in {results.seconds:.1f} s on {results.device}")
    return 0


def _cell(row: pd.Series) -> str:
    mean, low, high = (100 * float(row[name]) for name in ("mean", "ci_low", "ci_high"))
    if math.isnan(low):
        return f"{mean:>6.1f}{'':<14}"
    return f"{mean:>6.1f} [{low:>5.1f}–{high:>5.1f}]"


def format_table(results: TransferResults) -> str:
    """Mean test accuracy (%) with its 95 % interval across seeds, per strategy (rows) and shots (columns)."""
    summary = results.summary()
    shots = sorted(summary["shots"].unique())
    width = max(len("examples per class"), *(len(name) for name in results.strategies)) + 1
    lines = [f"{'examples per class':<{width}}" + "".join(f"{k:>20}" for k in shots)]
    for strategy in results.strategies:
        part = summary[summary["strategy"] == strategy].set_index("shots")
        cells = "".join(_cell(part.loc[k]) if k in part.index else f"{'–':>20}" for k in shots)
        lines.append(f"{strategy:<{width}}{cells}")
    lines.append(f"{'chance':<{width}}{100 * results.chance:>6.1f}")
    return (
        f"{results.dataset}, test accuracy % (mean [95 % interval] over {results.seeds} seed"
        f"{'s' if results.seeds != 1 else ''})\n" + "\n".join(lines)
    )
