"""How often the feature-picture check says "trust it" – for pictures that should and should not pass.

On the bundled EfficientNet-Lite0, for ``--channels`` channels of each layer, the check
(:func:`explainer.inside.feature_check.check_feature_picture`, 54 crops of the bundled photos at 96 px) is given
three "pictures" in place of an optimized image:

* the channel's own strongest crop, held out of the searched crops (a natural image the channel truly prefers:
  the check should often pass it – its power);
* a random crop, held out (natural, but not chosen by the channel: it should rarely pass – its false-positive rate);
* the optimized image of ``visualize_channel`` (``--steps`` steps) – what users see.

It prints, per layer, the share called trustworthy and the share whose agreement alone is significant.

Usage: ``python benchmarks/feature_check.py [--channels 20] [--steps 48] [--threads 1] [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
import torch.nn.functional as F

import explainer
from explainer.inside.feature_check import EXEMPLARS, check_feature_picture, default_exemplar_images

SIZE = 96


def _held_out(crops: torch.Tensor, index: int) -> torch.Tensor:
    return torch.cat([crops[:index], crops[index + 1 :]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="blocks.2,blocks.4,blocks.5")
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = explainer.load_model()
    crops = F.interpolate(default_exemplar_images(model), size=(SIZE, SIZE), mode="bilinear", antialias=True).clamp(0, 1)
    generator = torch.Generator().manual_seed(0)
    results = []
    started = time.perf_counter()
    for layer in args.layers.split(","):
        counts = {kind: {"trustworthy": 0, "agreement": 0} for kind in ("own top crop", "random crop", "optimized")}
        for channel in range(args.channels):
            picture = explainer.visualize_channel(model, layer=layer, channel=channel, steps=args.steps, size=SIZE,
                                                  exemplars=crops, progress=False)
            assert picture.check is not None
            best = picture.check.exemplars.indices[0]
            pick = int(torch.randint(len(crops), (1,), generator=generator))
            checks = {
                "own top crop": check_feature_picture(model, dataclasses.replace(picture, image=crops[best]),
                                                      _held_out(crops, best), seed=channel),
                "random crop": check_feature_picture(model, dataclasses.replace(picture, image=crops[pick]),
                                                     _held_out(crops, pick), seed=channel),
                "optimized": picture.check,
            }
            for kind, check in checks.items():
                counts[kind]["trustworthy"] += int(check.trustworthy)
                counts[kind]["agreement"] += int(check.agreement.winner == EXEMPLARS)
        for kind, count in counts.items():
            results.append({"layer": layer, "picture": kind, "channels": args.channels,
                            "trustworthy": count["trustworthy"] / args.channels,
                            "agreement_significant": count["agreement"] / args.channels})
    if args.json:
        print(json.dumps({"rows": results, "seconds": time.perf_counter() - started}, indent=2))
        return
    print(f"{'layer':10} {'picture':14} {'trustworthy':>12} {'agreement significant':>22}")
    for row in results:
        print(f"{row['layer']:10} {row['picture']:14} {row['trustworthy']:12.0%} {row['agreement_significant']:22.0%}")
    print(f"{args.channels} channels per layer, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
