"""`explainer predict IMAGE...`: top-k classes for each image."""

from __future__ import annotations

import argparse
import math
from typing import Any

from explainer.commands._options import add_json_option, add_model_options, add_top_k_option, model_from_args
from explainer.commands._per_input import finish, load_inputs, per_image


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("predict", help="classify images with a model")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_options(parser)
    add_top_k_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status (1 when some images failed: their rows carry the error)."""
    inputs = load_inputs(args.images)
    classifier = model_from_args(args) if inputs.images else None

    def work(names: list[str], images: list) -> list[dict[str, Any]]:
        assert classifier is not None
        predictions = classifier.predict(images, top_k=args.top_k)
        rows: list[dict[str, Any]] = []
        for name, preds in zip(names, predictions):
            if not all(math.isfinite(p.probability) for p in preds):
                row = {"image": name, "error": "the model's outputs for this image are not finite (NaN or "
                                "infinite); check the model's weights (load_model warns about non-finite ones)."}
                rows.append(row)
                continue
            rows.append({
                "image": name,
                "predictions": [{"label": p.label, "index": p.index, "probability": p.probability} for p in preds],
            })
        return rows

    rows = inputs.failed + per_image(inputs, work)
    return finish("predict", rows, as_json=args.json, print_text=_print_text)


def _print_text(rows: list[dict]) -> None:
    for result in rows:
        print(result["image"])
        for p in result["predictions"]:
            print(f"  {p['probability']:6.1%}  {p['label']} ({p['index']})")
