"""`explainer transfer`: transfer learning vs training from scratch on a few labelled examples per class."""

from __future__ import annotations

import argparse

from explainer.cli import print_json
from explainer.commands._options import warn_deprecated
from explainer.errors import InputError
from explainer.models import BUNDLED_MODEL
from explainer.transfer.experiment import DEFAULT_LR, DEFAULT_SHOTS, STRATEGIES, TransferResults, compare_transfer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "transfer", help="compare transfer learning with training from scratch on 1–50 examples per class"
    )
    parser.add_argument(
        "--dataset", default="textures", help="textures, digits, cifar10 or imagefolder:PATH (default textures)"
    )
    parser.add_argument("--model", default=BUNDLED_MODEL,
                        help=f"pretrained backbone: bundled or timm model name (default {BUNDLED_MODEL})")
    parser.add_argument("--backbone", dest="backbone", default=None, help=argparse.SUPPRESS)  # deprecated: --model
    parser.add_argument(
        "--shots", default=",".join(map(str, DEFAULT_SHOTS)), metavar="N,N,...",
        help="labelled examples per class, comma-separated (default %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="samples per shot level (default 3)")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), metavar="NAME,...", help="comma-separated (default: all of them)"
    )
    parser.add_argument(
        "--steps", type=int, default=100, help="Adam steps of fine_tune, scratch and small_cnn (default 100)"
    )
    parser.add_argument(
        "--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate of fine_tune and scratch (default {DEFAULT_LR:g})"
    )
    parser.add_argument("--image-size", type=int, default=64, help="input size in pixels (default 64)")
    parser.add_argument(
        "--out", default=None, metavar="FILE", help="stream results to FILE (.jsonl or .json); a rerun resumes"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def parse_shots(text: str) -> list[int]:
    """'1,5,20' → [1, 5, 20]; anything else raises InputError naming the bad part."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise InputError(f"--shots must be comma-separated whole numbers of at least 1, like 1,5,20; got {text!r}.")
    return [int(part) for part in parts]


def model_source(args: argparse.Namespace) -> str:
    """``--model``, or the deprecated ``--backbone`` (with a note on stderr) when that was given."""
    if args.backbone is None:
        return args.model
    warn_deprecated("--backbone", "--model")
    return args.backbone


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    from tqdm import tqdm

    shots = parse_shots(args.shots)
    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    with tqdm(desc="transfer runs", unit="run", disable=None) as bar:

        def progress(done: int, total: int, row: dict) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(f"{row['strategy']} {row['shots']}/class seed {row['seed']}: {row['accuracy']:.1%}")

        results = compare_transfer(
            args.dataset, model_source(args), shots=shots, seeds=args.seeds, strategies=strategies,
            image_size=args.image_size, steps=args.steps, out=args.out, callback=progress, device=args.device,
            lr=args.lr,
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


def format_table(results: TransferResults) -> str:
    """Mean ± std test accuracy (%) per strategy (rows) and labelled examples per class (columns)."""
    summary = results.summary()
    shots = sorted(summary["shots"].unique())
    width = max(len("examples per class"), *(len(name) for name in results.strategies)) + 1
    lines = [f"{'examples per class':<{width}}" + "".join(f"{k:>13}" for k in shots)]
    for strategy in results.strategies:
        part = summary[summary["strategy"] == strategy].set_index("shots")
        cells = "".join(f"{100 * part.loc[k, 'mean']:>7.1f} ±{100 * part.loc[k, 'std']:>4.1f}" for k in shots)
        lines.append(f"{strategy:<{width}}{cells}")
    lines.append(f"{'chance':<{width}}{100 * results.chance:>7.1f}")
    return f"{results.dataset}, test accuracy % (mean ± std over seeds)\n" + "\n".join(lines)
