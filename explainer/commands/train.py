"""`explainer train`: train a network on a CPU (or GPU) live and print a receipt of what it cost."""

from __future__ import annotations

import argparse
import sys

from explainer.commands._json import print_json
from explainer.data.datasets import load_dataset
from explainer.errors import InputError
from explainer.hardware import resolve_device
from explainer.learn.architectures import ACTIVATIONS, build_model
from explainer.learn.training import fit
from explainer.learn.training_options import OPTIMIZERS
from explainer.learn.training_run import EpochStats


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("train", help="train a network live and print what it cost (a receipt)")
    parser.add_argument("--dataset", default="digits", help="dataset name (default: digits)")
    parser.add_argument("--arch", default="cnn", help="cnn, mlp or a timm architecture name (default: cnn)")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs to train (default 20)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--activation", default=None, choices=sorted(ACTIVATIONS), help="activation for cnn/mlp (default relu)")
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="optimizer (default adam)")
    parser.add_argument("--target-accuracy", type=float, default=0.97, help="stop at this test accuracy (default 0.97; 0 = never)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice, one per core)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    import torch
    from tqdm import tqdm

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset)
    spec = {"activation": args.activation} if args.activation else {}
    model = build_model(args.arch, dataset, seed=args.seed, **spec)
    target = args.target_accuracy or None
    with tqdm(total=args.epochs, desc=f"train {args.arch} on {dataset.name}", unit="epoch", file=sys.stderr) as bar:

        def progress(stats: EpochStats) -> None:
            bar.set_postfix(loss=f"{stats.train_loss:.3f}", test_acc=f"{stats.test_accuracy:.3f}", refresh=False)
            bar.update(1)

        result = fit(
            model, dataset, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, batch_size=args.batch_size,
            target_accuracy=target, device=resolve_device(args.device), seed=args.seed, callback=progress,
        )
    summary = result.receipt_dict()
    summary["arch"] = args.arch
    if args.json:
        print_json(summary)
    else:
        print(result.message)
        print(result.receipt())
    return 0
