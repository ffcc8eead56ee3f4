"""`explainer patch CLEAN [CORRUPTED]`: which layer (channel, position) carries the answer – activation patching."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from explainer.commands._json import print_json
from explainer.commands._options import (
    add_budget_option,
    add_json_option,
    add_model_options,
    layer_list,
    model_from_args,
    positive_int,
)
from explainer.data.images import load_image
from explainer.errors import InputError
from explainer.inside.patching import CORRUPTIONS, GRANULARITIES, corrupt, patch

#: Corruptions the CLI can make from the clean image alone ("image" needs CORRUPTED).
MADE_CORRUPTIONS = tuple(how for how in CORRUPTIONS if how != "image")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "patch", help="activation patching: which layer, channel or position restores the clean answer")
    parser.add_argument("clean", metavar="CLEAN", help="image file the model answers correctly")
    parser.add_argument("corrupted", metavar="CORRUPTED", nargs="?", default=None,
                        help="its corrupted copy, e.g. another class's photo (default: made by --corruption)")
    add_model_options(parser)
    parser.add_argument("--corruption", choices=MADE_CORRUPTIONS, default=None,
                        help="how to corrupt CLEAN when CORRUPTED is not given (default blur)")
    parser.add_argument("--layers", default=None, metavar="L,L,...",
                        help="layers to patch (default: every feature layer; for channel/position the CAM layer)")
    parser.add_argument("--granularity", choices=GRANULARITIES, default="layer",
                        help="patch whole layers, one channel or one spatial position (ViT: token) at a time "
                             "(default layer; channel and position take one layer)")
    parser.add_argument("--target", default=None, help="class index or label (default: the clean image's top class)")
    parser.add_argument("--batch-size", type=positive_int("--batch-size"), default=None, metavar="N",
                        help="patched forwards per batch (default 8 on a CPU, 32 on a GPU; results do not depend on it)")
    parser.add_argument("--top-sites", type=positive_int("--top-sites"), default=10, metavar="N",
                        help="sites shown in the text output, best first (default 10; --json has all)")
    add_budget_option(parser, default=None, what="a call")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Patch every site of the corrupted run with the clean run's activation and print the restored fractions."""
    if args.corrupted is not None and args.corruption is not None:
        raise InputError("Give CORRUPTED or --corruption, not both: --corruption makes the corrupted copy "
                         "when no CORRUPTED image is given.")
    layers = layer_list(args.layers)
    if args.granularity != "layer" and layers is not None and len(layers) != 1:
        raise InputError(f"--granularity {args.granularity} patches one layer's {args.granularity}s; "
                         f"give one layer in --layers, got {len(layers)}.")
    clean = load_image(args.clean)
    other = [load_image(args.corrupted)] if args.corrupted is not None else None
    corruption = "image" if other is not None else (args.corruption or "blur")
    classifier = model_from_args(args)
    corrupted = corrupt(classifier, [clean], corruption, other=other)
    result = patch(classifier, [clean], corrupted, layers=layers if args.granularity == "layer" else
                   (layers[0] if layers else None), granularity=args.granularity, target=args.target,
                   batch_size=args.batch_size, progress=True, budget_seconds=args.budget)  # estimate + bar on stderr
    table = result.summary()
    payload: dict[str, Any] = {
        "clean": args.clean, "corrupted": args.corrupted, "corruption": corruption, "model": classifier.name,
        "granularity": result.granularity, "layers": result.layers, "target": result.target_labels[0],
        "target_index": result.targets[0], "clean_logit": float(result.clean_logit[0]),
        "corrupted_logit": float(result.corrupted_logit[0]), "best_site": result.best_site,
        "verdict": result.verdict(), "forwards": result.forwards, "seconds": result.seconds,
        "sites": table.to_dict(orient="records"),
    }
    if result.granularity == "position" and result.grid is not None:
        payload["grid"] = list(result.grid)
    if args.json:
        print_json(payload)
        return 0
    print(f"{classifier.name}: target {payload['target']!r}, logit clean {payload['clean_logit']:.3g} vs corrupted "
          f"({corruption}) {payload['corrupted_logit']:.3g}")
    shown = table.assign(order=-table["restored"].fillna(-np.inf)).sort_values("order", kind="stable").head(args.top_sites)
    for site, restored in zip(shown["site"], shown["restored"].astype(float)):
        value = "n/a" if not np.isfinite(restored) else f"{restored:6.1%}"
        print(f"  {value}  {site}")
    print(result.verdict())
    return 0
