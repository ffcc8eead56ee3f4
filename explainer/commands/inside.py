"""`explainer anatomy` (layers, shapes, parameters), `explainer ablate IMAGE` (switch channels off) and
`explainer feature --layer L --channel C` (a feature picture, checked against natural exemplars)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from explainer.commands._json import print_json
from explainer.commands._options import (
    add_budget_option,
    add_json_option,
    add_model_options,
    add_old_flag,
    add_out_option,
    add_top_k_option,
    model_from_args,
    positive_int,
)
from explainer.commands._per_input import check_out_folder, save_png
from explainer.data.images import load_image
from explainer.errors import InputError
from explainer.inside.features import visualize_channel
from explainer.inside.intervention import ablate, cam_channel_importance
from explainer.models.anatomy import model_anatomy
from explainer.models.classifier import Classifier


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    add_json_option(parser)


#: Most random-channel draws `ablate` makes for its comparison (each is one forward pass).
MAX_RANDOM_DRAWS = 100


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("anatomy", help="the network's layers: output shapes and parameter counts")
    _model_arguments(parser)
    parser.add_argument("--depth", type=int, default=1, help="1 = top-level blocks, 2 = their children, ...")
    parser.set_defaults(func=run_anatomy)

    parser = subparsers.add_parser("ablate", help="switch channels off inside the network and compare predictions")
    parser.add_argument("image", metavar="IMAGE", help="image file")
    _model_arguments(parser)
    parser.add_argument("--layer", default=None, help="layer to intervene on (default: the Grad-CAM layer)")
    parser.add_argument("--channels", default=None, metavar="C,C,...",
                        help="channels to ablate (default: the --ablate N channels the prediction relies on most)")
    parser.add_argument("--ablate", type=int, default=10, metavar="N", dest="channels_to_ablate",
                        help="how many of the most important channels to ablate (default 10)")
    add_old_flag(parser, "--top", "--ablate (channels to ablate; --top-k is the predictions shown)",
                 dest="channels_to_ablate", type=positive_int("--top"))
    add_top_k_option(parser, old_name=False)
    parser.add_argument("--mode", choices=("zero", "mean"), default="zero", help="replace by zero or by the mean")
    parser.add_argument("--random-draws", type=int, default=3, metavar="N",
                        help="also ablate as many random channels N times, for comparison (default 3; 0 = off)")
    parser.set_defaults(func=run_ablate)

    parser = subparsers.add_parser("feature", help="optimize an image to excite one channel and check it against the "
                                                   "channel's natural exemplars (is the picture trustworthy?)")
    _model_arguments(parser)
    parser.add_argument("--layer", required=True, help="layer of the channel (see `explainer anatomy`)")
    parser.add_argument("--channel", required=True, type=int, help="channel index in the layer")
    parser.add_argument("--steps", type=positive_int("--steps"), default=96, help="optimization steps (default 96)")
    parser.add_argument("--size", type=positive_int("--size"), default=128, help="picture size in pixels (default 128)")
    parser.add_argument("--exemplars", nargs="+", default=None, metavar="IMAGE",
                        help="natural images searched for the channel's exemplars (default: crops of the sample photos)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the optimization and the control groups (default 0)")
    add_out_option(parser, "dir", help="write the picture as feature.png and the exemplars as exemplar_K.png into DIR")
    add_budget_option(parser, default=None, what="a call")
    parser.set_defaults(func=run_feature)


def _load(args: argparse.Namespace) -> Classifier:
    return model_from_args(args)


def run_anatomy(args: argparse.Namespace) -> int:
    """Print the network's layers."""
    result = model_anatomy(_load(args), depth=args.depth)
    if args.json:
        print_json({"model": result.model_name, "total_params": result.total_params,
                    "trainable_params": result.trainable_params, "depth": result.depth,
                    "layers": result.table.to_dict(orient="records")})
        return 0
    print(result.table.drop(columns=["param_share"]).to_string(index=False))
    print(f"{result.total_params:,} parameters ({result.trainable_params:,} trainable)")
    return 0


def _parse_channels(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--channels takes comma-separated integers such as 3,17,250; got {text!r}.") from None


def run_ablate(args: argparse.Namespace) -> int:
    """Zero channels and print how the prediction moves."""
    if args.channels_to_ablate < 1:
        raise InputError(f"--ablate must be at least 1 (how many channels to ablate), got {args.channels_to_ablate}.")
    if not 0 <= args.random_draws <= MAX_RANDOM_DRAWS:
        raise InputError(f"--random-draws must be from 0 to {MAX_RANDOM_DRAWS} (each draw is a forward pass), "
                         f"got {args.random_draws}.")
    classifier = _load(args)
    image = load_image(args.image)
    if args.channels is not None:
        if args.layer is None:
            raise InputError("--channels needs --layer naming the layer they belong to.")
        layer, channels, chosen_by = args.layer, _parse_channels(args.channels), "given"
    else:
        importance = cam_channel_importance(classifier, image, layer=args.layer)
        layer, channels = importance.layer, importance.top(args.channels_to_ablate, image=0)
        chosen_by = f"top {args.channels_to_ablate} by gradient × activation for the predicted class"
    result = ablate(classifier, image, layer=layer, channels=channels, mode=args.mode, top_k=args.top_k)
    rng = np.random.default_rng(0)
    random_drops: list[float] = []
    for _ in range(max(args.random_draws, 0)):
        picks = rng.choice(result.layer_channels, size=len(channels), replace=False).tolist()
        random_drops.append(float(ablate(classifier, image, layer=layer, channels=picks, mode=args.mode,
                                         target=result.targets[0]).drop[0]))
    payload: dict[str, Any] = {
        "image": args.image, "model": classifier.name, "layer": layer, "mode": args.mode,
        "channels": channels, "channels_chosen_by": chosen_by, "target": result.target_labels[0],
        "probability_before": float(result.prob_before[0]), "probability_after": float(result.prob_after[0]),
        "drop": float(result.drop[0]), "random_channel_drops": random_drops,
        "top_before": [vars(p) for p in result.top_before[0]], "top_after": [vars(p) for p in result.top_after[0]],
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"{layer}: {args.mode}-ablating {len(channels)} channels ({chosen_by}): {channels}")
    print(f"{payload['target']}: {payload['probability_before']:.1%} -> {payload['probability_after']:.1%}")
    if random_drops:
        print(f"same number of random channels: mean drop {np.mean(random_drops):.1%} over {len(random_drops)} draws")
    print("after: " + ", ".join(f"{p.label} {p.probability:.1%}" for p in result.top_after[0]))
    return 0


def run_feature(args: argparse.Namespace) -> int:
    """A feature picture of one channel and whether to trust it."""
    folder = check_out_folder(args.out_dir) if args.out_dir else None
    exemplars = [load_image(path) for path in args.exemplars] if args.exemplars else None
    classifier = _load(args)
    top_k = 9 if exemplars is None else min(9, len(exemplars) // 2)  # the check pairs each exemplar with others
    if top_k < 2:
        raise InputError(f"--exemplars needs at least 4 images (the strongest and as many others), got {len(exemplars or [])}.")
    result = visualize_channel(classifier, layer=args.layer, channel=args.channel, steps=args.steps, size=args.size,
                               seed=args.seed, exemplars=exemplars, top_k=top_k, progress=True,
                               budget_seconds=args.budget)  # the estimate and a bar on stderr
    check = result.check
    assert check is not None  # visualize_channel checks by default
    written = []
    if folder is not None:
        written.append(save_png(result.image, folder / "feature.png"))
        written += [save_png(pixels, folder / f"exemplar_{rank}.png")
                    for rank, pixels in enumerate(check.exemplars.pixels, start=1)]
    if args.json:
        print_json({"model": classifier.name, **result.to_dict(), "verdict": result.verdict(), "written": written})
        return 0
    names = [args.exemplars[i] for i in check.exemplars.indices] if args.exemplars else check.exemplars.names
    print(f"{classifier.name}: {args.layer} channel {args.channel}: picture activation {result.activation:.3g} "
          f"(photos {result.photo_activation:.3g}, noise {result.noise_activation:.3g}); "
          f"{len(names)} strongest natural exemplars: {', '.join(names)}")
    print(result.verdict())
    for path in written:
        print(f"wrote {path}")
    return 0
