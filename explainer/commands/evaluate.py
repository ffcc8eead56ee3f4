"""`explainer evaluate (IMAGE... | --dataset NAME) --method M...`: which attribution map can I trust? – evidence over a dataset."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from explainer.commands._json import print_json
from explainer.commands._options import (
    add_budget_option,
    add_json_option,
    add_method_options,
    method_params,
    warn_deprecated,
)
from explainer.data.evaluation_data import SAMPLE_PHOTOS, load_evaluation_data
from explainer.errors import InputError
from explainer.evidence.controls import CONTROLS
from explainer.evidence.evaluate import TRAIN_PREFIX, evaluate, trained_classifier
from explainer.evidence.metrics import (
    DEFAULT_STEPS,
    INSERTION_BLURS,
    METRICS,
    RANDOMIZATION_COPIES,
)
from explainer.evidence.precision import CHECK_IMAGES, PRECISIONS, resolve_precision
from explainer.evidence.randomization import RANDOMIZATION_STEPS


def add_precision_options(parser: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--compile``: how the perturbed forwards of the curves run (also for ``check``)."""
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="perturbed forwards in fp32 (default), bf16 (autocast, channels_last) or auto (bf16 "
                             "where the hardware has it natively and a one-batch check agrees with fp32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward (pays off on long runs)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "evaluate", help="score attribution methods and controls over a dataset, with confidence intervals",
        description="Score methods and control maps on every image by one protocol; mean and Student-t 95 % "
                    "interval per method × metric, paired t-tests Holm-adjusted over the family the verdict rests "
                    "on, flags where a method does not beat a control (random, edges, brightness, centre), and a "
                    "verdict that names a winner only from 5 images on.",
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="image files (or use --dataset)")
    parser.add_argument("--dataset", default=None, metavar="NAME",
                        help=f"a dataset instead of image files: digits, known_answer, textures, imagefolder:PATH, "
                             f"{SAMPLE_PHOTOS} (the bundled photos)")
    parser.add_argument("--model", default=None,
                        help="model source (default: the bundled model); train:cnn or train:mlp trains that small "
                             "network on the dataset's train split first")
    parser.add_argument("--arch", default=None, help="architecture of a checkpoint file given as --model")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the model's device)")
    add_method_options(parser, default=["gradcam"], budget=False)
    add_budget_option(parser, default=None, what="an evaluation")
    parser.add_argument("--metric", nargs="+", default=None, choices=list(METRICS), metavar="METRIC",
                        help=f"metrics (default: all that apply): {', '.join(METRICS)}")
    parser.add_argument("--no-controls", action="store_true", help=f"leave out the controls ({', '.join(CONTROLS)})")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    parser.add_argument("--targets", default="predicted", choices=("predicted", "labels"),
                        help="explain each image's predicted class (default) or its label")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"steps per curve (default {DEFAULT_STEPS})")
    parser.add_argument("--baseline", default="zero", help="what deleted pixels become: zero, black, white, blur")
    parser.add_argument("--randomization-steps", type=int, default=RANDOMIZATION_STEPS,
                        help=f"cascade steps of the randomization check (default {RANDOMIZATION_STEPS})")
    parser.add_argument("--insertion-blur", default="rise", choices=INSERTION_BLURS,
                        help="insertion canvas: rise (11 x 11 kernel, sigma 5 px; default) or sigma20 (1/20 of the side)")
    parser.add_argument("--randomization-copies", type=int, default=RANDOMIZATION_COPIES,
                        help=f"independently randomized copies of the model (default {RANDOMIZATION_COPIES})")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    add_precision_options(parser)
    parser.add_argument("--out", default=None, metavar="FILE", help="results file (JSON lines); a rerun resumes")
    parser.add_argument("--backend", default="local", choices=("local", "ray"), help="where units run")
    parser.add_argument("--address", default=None, help="Ray cluster address for --backend ray (default auto)")
    add_json_option(parser)
    parser.set_defaults(func=run)


#: Names that a positional DATA argument meant a dataset in 0.3 (now ``--dataset NAME``; accepted until 0.5).
_DATASET_NAMES = ("digits", "known_answer", "textures", "mnist", "fashion_mnist", "cifar10", SAMPLE_PHOTOS)


def _data(args: argparse.Namespace) -> Any:
    """The dataset name or the list of image files the user gave (exactly one of the two)."""
    images = list(args.images)
    if args.dataset is not None:
        if images:
            raise InputError(f"give image files or --dataset {args.dataset}, not both "
                             f"(got {len(images)} file(s) beside it).")
        return args.dataset
    if not images:
        raise InputError("nothing to evaluate: give image files, or a dataset with --dataset NAME "
                         f"(for example --dataset digits, or --dataset {SAMPLE_PHOTOS} for the bundled photos).")
    if len(images) == 1 and (":" in images[0] or images[0] in _DATASET_NAMES):
        warn_deprecated(f"a dataset name as a positional argument ('evaluate {images[0]}')",
                        f"'evaluate --dataset {images[0]}'")
        return images[0]
    return images


def _model(args: argparse.Namespace, data: Any) -> Any:
    from explainer.models import BUNDLED_MODEL, load_model

    source = args.model or BUNDLED_MODEL
    if source.startswith(TRAIN_PREFIX):
        if not isinstance(data, str) or data == SAMPLE_PHOTOS:
            raise InputError(f"--model {source} trains on a dataset's train split; give a dataset name such as digits.")
        print(f"training {source[len(TRAIN_PREFIX):]} on {data} …", file=sys.stderr)
        return trained_classifier(source[len(TRAIN_PREFIX):], data, seed=args.seed)
    return load_model(source, device=args.device, arch=args.arch)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    methods, params = method_params(args)
    data = _data(args)
    classifier = _model(args, data)
    targets = "labels" if args.targets == "labels" else None
    loaded = load_evaluation_data(data, classifier, args.limit)
    chosen = resolve_precision(classifier, args.precision, compile=args.compile,
                               probe=classifier.normalize(loaded.pixels[:CHECK_IMAGES]))
    print(f"perturbed forwards: {chosen.text()}", file=sys.stderr)
    started = time.perf_counter()
    result = evaluate(  # prints the estimate, then a progress bar (stderr); refuses a run over --budget
        classifier, data, methods=methods, params=params, metrics=args.metric, controls=not args.no_controls,
        limit=args.limit, targets=targets, steps=args.steps, baseline=args.baseline,
        randomization_steps=args.randomization_steps, device=args.device, out=args.out, backend=args.backend,
        address=args.address, seed=args.seed, progress=True, precision=args.precision, compile=args.compile,
        budget_seconds=args.budget, insertion_blur=args.insertion_blur,
        randomization_copies=args.randomization_copies,
    )
    seconds = time.perf_counter() - started
    estimate = result.estimate_seconds or 0.0
    print(f"took {seconds:.1f} s (estimate {estimate:.1f} s, ratio {seconds / max(estimate, 1e-9):.2f})",
          file=sys.stderr)
    payload = result.to_dict()
    payload["config"] = {**payload["config"], "seconds": round(seconds, 2), "estimate_seconds": round(estimate, 2)}
    if args.json:
        print_json(payload)
        return 0
    _print_table(payload)
    return 0


def _print_table(payload: dict[str, Any]) -> None:
    flagged = {(f["method"], f["metric"]) for f in payload["flags"]}
    print(f"{'metric':<15} {'method':<24} {'mean':>8} {'95 % CI (t)':>19} {'n':>5}  better")
    for row in payload["summary"]:
        low, high = row["ci_low"], row["ci_high"]
        interval = "n/a" if low is None else f"{low:.3f} – {high:.3f}"
        mark = "  ✗ does not beat a control" if (row["method"], row["metric"]) in flagged else ""
        mean = "n/a" if row["mean"] is None else f"{row['mean']:.3f}"
        print(f"{row['metric']:<15} {row['method']:<24} {mean:>8} {interval:>19} {row['n']:>5}  {row['better']}{mark}")
    print()
    print(payload["verdict"])
