"""`explainer sweep`: train a grid of settings × seeds and say, with intervals, what made a difference."""

from __future__ import annotations

import argparse
import sys

from explainer.commands._json import print_json
from explainer.commands._options import add_budget_option, add_json_option
from explainer.errors import InputError
from explainer.learn.sweep import SweepProgress, sweep
from explainer.learn.sweep_grid import SETTING_HELP, SETTINGS, TrainingTask, parse_setting
from explainer.stats import MIN_SAMPLES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "sweep", help="train every combination of a grid of settings × seeds and compare them with intervals",
        description="Settings a --grid may vary: " + "; ".join(f"{k} ({v})" for k, v in SETTING_HELP.items()) + ".",
    )
    parser.add_argument("--dataset", default="digits", help="dataset name, e.g. digits, circle, imagefolder:PATH (default digits)")
    parser.add_argument("--arch", default="mlp", help="mlp, cnn or a timm architecture name (default mlp)")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="SETTING=V,V,...",
        help=f"a setting and its values, e.g. --grid lr=0.001,0.01,0.1; repeat for more ({', '.join(SETTINGS)})",
    )
    parser.add_argument("--seeds", type=int, default=MIN_SAMPLES,
                        help=f"seeds per configuration (default {MIN_SAMPLES}: the fewest that can name a winner)")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per run (default 10)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate where the grid does not vary it (default 1e-3)")
    parser.add_argument("--out", default=None, metavar="FILE", help="stream runs to FILE (JSON lines); a rerun resumes")
    parser.add_argument("--backend", default="local", choices=("local", "ray"), help="where runs go (default local)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: auto, an existing cluster)")
    add_budget_option(parser, default=None, what="a grid (the estimate comes from a measured first run)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for local runs (default: the free cores)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["lr=0.001,0.01", "activation=relu,tanh"]`` → ``{"lr": [0.001, 0.01], "activation": ["relu", "tanh"]}``."""
    if not items:
        raise InputError("Give at least one --grid SETTING=V,V,..., e.g. --grid lr=0.001,0.01,0.1.")
    grid: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep:
            raise InputError(f"--grid takes SETTING=V,V,..., e.g. lr=0.001,0.01; got {item!r}.")
        if name in grid:
            raise InputError(f"--grid {name} is given twice; list all its values once, comma-separated.")
        grid[name] = parse_setting(name, values)
    return grid


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    from tqdm import tqdm

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}.")
    grid = parse_grid(args.grid)
    task = TrainingTask(dataset=args.dataset, arch=args.arch, epochs=args.epochs, lr=args.lr, device=args.device)
    with tqdm(desc="sweep runs", unit="run", file=sys.stderr, disable=None) as bar:

        def progress(event: SweepProgress) -> None:
            if event.estimate is not None:
                print(event.estimate.words(), file=sys.stderr)
                bar.reset(total=event.total)
            bar.n = event.done
            bar.refresh()

        results = sweep(task, grid, seeds=args.seeds, out=args.out, backend=args.backend, address=args.address,
                        budget_seconds=args.budget or None, progress=progress, threads=args.threads)
    if args.json:
        print_json(results.to_dict())
        return 0
    summary = results.summary()
    summary[["mean", "ci_low", "ci_high"]] = (100 * summary[["mean", "ci_low", "ci_high"]]).round(1)
    summary["seconds"] = summary["seconds"].round(2)
    print(summary.rename(columns={"mean": "acc %", "ci_low": "low", "ci_high": "high"}).to_string(index=False))
    print()
    print(results.verdict())
    if args.out:
        print(f"Runs are in {args.out}; open them with explainer.open_sweep({args.out!r}) or the dashboard.")
    return 0
