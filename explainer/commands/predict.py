"""`explainer predict IMAGE...`: top-k classes for each image."""

from __future__ import annotations

import argparse

from explainer.cli import print_json
from explainer.data.images import load_image
from explainer.models import BUNDLED_MODEL, load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("predict", help="classify images with a model")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--model", default=BUNDLED_MODEL, help=f"model source (default: {BUNDLED_MODEL})")
    parser.add_argument("--arch", default=None, help="architecture for a checkpoint file given as --model")
    parser.add_argument("--top", type=int, default=5, metavar="K", help="how many classes to show (default 5)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    images = [load_image(path) for path in args.images]
    classifier = load_model(args.model, device=args.device, arch=args.arch)
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
