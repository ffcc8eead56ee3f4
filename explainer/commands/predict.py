"""`explainer predict IMAGE...`: top-k classes for each image."""

from __future__ import annotations

import argparse

from explainer.cli import print_json
from explainer.commands._options import add_json_option, add_model_options, model_from_args
from explainer.data.images import load_image


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("predict", help="classify images with a model")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_options(parser)
    parser.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to show (default 5)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    images = [load_image(path) for path in args.images]
    classifier = model_from_args(args)
    predictions = classifier.predict(images, top_k=args.top)
    results = [
        {
            "image": path,
            "predictions": [{"label": p.label, "index": p.index, "probability": p.probability} for p in preds],
        }
        for path, preds in zip(args.images, predictions)
    ]
    if args.json:
        print_json(results)
        return 0
    for result in results:
        print(result["image"])
        for p in result["predictions"]:
            print(f"  {p['probability']:6.1%}  {p['label']} ({p['index']})")
    return 0
