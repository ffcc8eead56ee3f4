"""`explainer check IMAGE... --method M...`: faithfulness evidence (deletion, insertion, randomization) per image."""

from __future__ import annotations

import argparse
import math
from typing import Any

from explainer.attribution.explanation import explain
from explainer.commands._options import (
    add_json_option,
    add_method_options,
    add_model_options,
    method_params,
    model_from_args,
)
from explainer.commands._per_input import finish, load_inputs, per_image
from explainer.commands.evaluate import add_precision_options
from explainer.evidence.faithfulness import BASELINES, check_faithfulness


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser(
        "check", help="measure how faithful attribution maps are (deletion/insertion curves, model randomization)"
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_options(parser)
    add_method_options(parser, default=["gradcam"])
    parser.add_argument("--target", default=None, help="class index or label (default: each image's top class)")
    parser.add_argument("--steps", type=int, default=25, help="perturbation steps per curve (default 25)")
    parser.add_argument("--seeds", type=int, default=3, help="random orders as the reference (default 3)")
    parser.add_argument("--baseline", default="zeros", choices=BASELINES, help="what deleted pixels become")
    parser.add_argument("--no-randomization", action="store_true", help="skip the model-randomization check")
    add_precision_options(parser)
    add_json_option(parser)
    parser.set_defaults(func=run)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status (1 when some images failed: their rows carry the error)."""
    methods, params = method_params(args)
    inputs = load_inputs(args.images)
    classifier = model_from_args(args) if inputs.images else None
    rows: list[dict[str, Any]] = list(inputs.failed)
    for method in methods:

        def work(names: list[str], images: list, method: str = method) -> list[dict[str, Any]]:
            assert classifier is not None  # work runs only when some image loaded
            explanation = explain(classifier, images, method=method, target=args.target, budget_seconds=args.budget,
                                  **params[method])
            report = check_faithfulness(
                classifier, explanation, steps=args.steps, random_seeds=args.seeds,
                baseline=args.baseline, randomization=not args.no_randomization, precision=args.precision,
                compile=args.compile, progress=True, budget_seconds=args.budget,
            )
            return [_row(report, explanation, i, path, method) for i, path in enumerate(names)]

        rows += per_image(inputs, work, method=method)
    return finish("check", rows, as_json=args.json, print_text=_print_text)


def _row(report: Any, explanation: Any, i: int, path: str, method: str) -> dict[str, Any]:
    aucs, final = report.aucs, report.randomization_correlation
    return {
        "image": path,
        "method": method,
        "target": report.targets[i],
        "label": report.labels[i],
        "deletion_auc": _number(aucs["deletion"][i]),
        "lerf_deletion_auc": _number(aucs["lerf_deletion"][i]),
        "insertion_auc": _number(aucs["insertion"][i]),
        "random_deletion_auc": _number(aucs["random_deletion"][i]),
        "random_insertion_auc": _number(aucs["random_insertion"][i]),
        "randomization_correlation": None if final is None else _number(final[i]),
        "verdicts": report.verdicts[i],
        "protocol": report.protocol,
        "explain_seconds": explanation.seconds,
        "check_seconds": report.seconds,
        "device": report.device,
    }


def _print_text(rows: list[dict[str, Any]]) -> None:
    print(f"{'image':<24} {'method':<22} {'label':<16} {'MoRF':>6} {'LeRF':>6} {'rand':>6} {'ins':>6} "
          f"{'r.ins':>6} {'rand.corr':>9}")
    for row in rows:
        corr = row["randomization_correlation"]
        cells = [row[k] for k in ("deletion_auc", "lerf_deletion_auc", "random_deletion_auc", "insertion_auc",
                                  "random_insertion_auc")]
        print(f"{row['image'][-24:]:<24} {row['method']:<22} {row['label'][:16]:<16} "
              + " ".join("   n/a" if c is None else f"{c:6.3f}" for c in cells)
              + f" {'n/a' if corr is None else f'{corr:.2f}':>9}")
    print("AUC of the target probability; MoRF deletion should be below LeRF, insertion above random insertion. "
          "rand.corr: rank correlation with the map of a fully re-initialized model (n/a: map became constant "
          "or check skipped).")
