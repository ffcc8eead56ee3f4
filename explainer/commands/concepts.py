"""`explainer concepts IMAGE...` (CRAFT-style NMF concepts of a layer) and `explainer tcav` (TCAV with its test)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from explainer.commands._json import print_json
from explainer.commands._options import (
    add_budget_option,
    add_json_option,
    add_model_options,
    add_out_option,
    layer_list,
    model_from_args,
    positive_int,
)
from explainer.commands._per_input import check_out_folder, save_png
from explainer.data.images import load_image
from explainer.errors import InputError
from explainer.inside.concepts import concepts
from explainer.inside.tcav import MIN_RUNS, PERMUTATIONS, TESTS, tcav
from explainer.models.layers import find_cam_layer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommands and their options to the CLI."""
    parser = subparsers.add_parser("concepts", help="concepts a layer uses for a class (NMF over image crops), "
                                                    "each with its importance for the class")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files, ideally of one class")
    add_model_options(parser)
    parser.add_argument("--layer", default=None, help="layer to factorise (default: the Grad-CAM layer)")
    parser.add_argument("--concepts", type=positive_int("--concepts"), default=10, metavar="K", dest="n_concepts",
                        help="how many concepts to extract (default 10)")
    parser.add_argument("--target", default=None, help="class index or label (default: each image's top class)")
    parser.add_argument("--grid", type=positive_int("--grid"), default=2, metavar="G",
                        help="each image is cut into G×G crops for the factorisation (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the factorisation (default 0)")
    add_out_option(parser, "dir", help="write each concept's top crops as concept_K.png into DIR")
    add_budget_option(parser, default=None, what="a call")
    add_json_option(parser)
    parser.set_defaults(func=run_concepts)

    parser = subparsers.add_parser("tcav", help="TCAV: is a class sensitive to a concept (given by example images)? "
                                                "Tested against random images")
    parser.add_argument("--concept", nargs="+", required=True, metavar="IMAGE", help="images showing the concept")
    parser.add_argument("--random", nargs="+", required=True, metavar="IMAGE",
                        help="random images: the --runs reference sets and, for the permutation test, the images "
                             "the concept is permuted with (at least 4 × as many as concept images)")
    parser.add_argument("--inputs", nargs="+", default=None, metavar="IMAGE",
                        help="images of the target class whose sensitivity is scored (default: the random images)")
    add_model_options(parser)
    parser.add_argument("--layers", required=True, metavar="L,L,...", help="layers to test, comma-separated")
    parser.add_argument("--target", required=True, help="class index or label whose sensitivity is tested")
    parser.add_argument("--runs", type=positive_int("--runs"), default=MIN_RUNS, metavar="N",
                        help=f"random reference sets (at least {MIN_RUNS}, default {MIN_RUNS})")
    parser.add_argument("--test", choices=TESTS, default="permutation",
                        help="permutation: exact, holds its error rate (default); kim: Kim et al.'s t-test, which "
                             "does not (the concept's runs share one concept set)")
    parser.add_argument("--permutations", type=positive_int("--permutations"), default=PERMUTATIONS, metavar="N",
                        help=f"pseudo-concepts of the permutation test (default {PERMUTATIONS}: smallest p 0.01)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random concepts and CAVs (default 0)")
    add_budget_option(parser, default=None, what="a call")
    add_json_option(parser)
    parser.set_defaults(func=run_tcav)


def _images(paths: list[str]) -> list[Image.Image]:
    return [load_image(path) for path in paths]


def run_concepts(args: argparse.Namespace) -> int:
    """Factorise a layer's activations into concepts and print each concept's importance."""
    folder = check_out_folder(args.out_dir) if args.out_dir else None  # before any work
    images = _images(args.images)
    classifier = model_from_args(args)
    layer = args.layer or find_cam_layer(classifier).name
    result = concepts(classifier, images, layer=layer, n_concepts=args.n_concepts, target=args.target,  # the estimate
                      grid=args.grid, seed=args.seed, progress=True, budget_seconds=args.budget)  # and a bar on stderr
    written = _write_crops(result.crops, result.top_crops, folder) if folder else []
    table = result.summary()
    payload: dict[str, Any] = {
        "images": args.images, "model": classifier.name, "layer": layer, "n_concepts": args.n_concepts,
        "targets": [classifier.labels[t] for t in result.targets], "verdict": result.verdict(),
        "seconds": result.seconds, "concepts": table.to_dict(orient="records"),
        "top_crops": [[int(i) for i in crops] for crops in result.top_crops], "files": written,
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"{classifier.name}, layer {layer}: {args.n_concepts} concepts from {len(images)} image(s) × "
          f"{args.grid * args.grid} crops; importance = target-logit drop when the concept is removed")
    for row in table.sort_values("importance", ascending=False).itertuples():
        print(f"  concept {row.concept:2d}  {row.importance:8.3g}  (95 % interval {row.ci_low:.3g} to {row.ci_high:.3g})")
    print(result.verdict())
    for path in written:
        print(f"wrote {path}")
    return 0


def _write_crops(crops: torch.Tensor, top: list[list[int]], folder: Path) -> list[str]:
    """One PNG per concept in ``folder`` (checked by ``check_out_folder``): its top crops side by side."""
    written = []
    for k, indices in enumerate(top):
        strip = torch.cat([crops[i] for i in indices], dim=2)  # (C, H, W × n)
        written.append(save_png(strip, folder / f"concept_{k}.png"))
    return written


def run_tcav(args: argparse.Namespace) -> int:
    """TCAV scores per layer with the chosen test."""
    if args.runs < MIN_RUNS:
        raise InputError(f"--runs must be at least {MIN_RUNS}: Kim et al.'s t-test needs {MIN_RUNS} or more random "
                         f"concepts, got {args.runs}.")
    layers = layer_list(args.layers) or []
    concept_images, random_images = _images(args.concept), _images(args.random)
    inputs = _images(args.inputs) if args.inputs else None
    classifier = model_from_args(args)
    result = tcav(classifier, concept_images, random_images, layers=layers, target=args.target, inputs=inputs,
                  runs=args.runs, test=args.test, permutations=args.permutations, seed=args.seed,
                  progress=True, budget_seconds=args.budget)  # the estimate and a bar on stderr
    table = result.summary()
    payload: dict[str, Any] = {
        "model": classifier.name, "target": result.target_label, "target_index": result.target,
        "runs": result.runs, "concept_images": result.n_concept, "random_size": result.random_size,
        "random_disjoint": result.disjoint, "inputs": result.n_inputs, "test": result.test,
        "permutations": result.permutations, "test_description": result.test_description,
        "verdict": result.verdict(), "seconds": result.seconds, "layers": table.to_dict(orient="records"),
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"{classifier.name}: TCAV of {result.n_concept} concept image(s) for {result.target_label!r}, "
          f"{result.runs} random reference sets of {result.random_size} image(s); {result.test_description}")
    for row in table.itertuples():
        mark = "significant" if row.significant else "no claim"
        print(f"  {row.layer:<24} score {row.score:.2f} (95 % interval {row.ci_low:.2f} to {row.ci_high:.2f})  "
              f"random {row.null:.2f}  Holm p {row.p_adjusted:.2g}  {mark}")
    print(result.verdict())
    return 0
