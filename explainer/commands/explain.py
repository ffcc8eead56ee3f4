"""`explainer explain IMAGE... --method M...`: attribution maps as HTML (and PNG when possible) figures."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from explainer.cli import print_json
from explainer.commands._options import (
    add_json_option,
    add_method_options,
    add_model_options,
    method_params,
    model_from_args,
)
from explainer.data.images import load_image
from explainer.explain.attribution import explain
from explainer.explain.registry import get_method

from ..plots.attribution import attribution_overlay, methods_grid

#: Where kaleido (PNG export) finds a browser when BROWSER_PATH is not set.
CHROMIUM = "/usr/bin/chromium"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the subcommand and its options to the CLI."""
    parser = subparsers.add_parser("explain", help="attribution maps (saliency, IG, Grad-CAM, ...) as figures")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_model_options(parser)
    add_method_options(parser, default=["integrated_gradients"])
    parser.add_argument("--target", default=None, help="class index or label (default: each image's top class)")
    parser.add_argument("--layer", default=None, help="CAM layer for gradcam & co. (default: found automatically)")
    parser.add_argument("--absolute", action="store_true", help="draw |attribution| instead of signed maps")
    parser.add_argument("--no-png", action="store_true", help="write HTML figures only (PNG needs kaleido + Chromium)")
    parser.add_argument("--out", default="explanations", metavar="DIR", help="folder for the figures (default: explanations)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status."""
    methods, params = method_params(args)
    images = [load_image(path) for path in args.images]
    classifier = model_from_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = _PngWriter(enabled=not args.no_png)
    explanations = []
    rows: list[dict[str, Any]] = []
    for method in methods:
        layer = args.layer if get_method(method).needs_layer else None
        explanation = explain(classifier, images, method=method, target=args.target, layer=layer,
                              budget_seconds=args.budget, **params[method])
        explanations.append(explanation)
        for i, path in enumerate(args.images):
            stem = out / f"{_slug(Path(path).stem)}_{i}_{method}"
            figure = attribution_overlay(explanation, index=i, absolute=args.absolute)
            figure.write_html(f"{stem}.html", include_plotlyjs="cdn")
            rows.append({
                "image": path,
                "method": method,
                "target": explanation.targets[i],
                "label": explanation.labels[i],
                "seconds": explanation.seconds / len(images),
                "out": f"{stem}.html",
                "png": png.write(figure, f"{stem}.png"),
                "params": explanation.params,
            })
    if len(methods) > 1:
        for i, path in enumerate(args.images):
            stem = out / f"{_slug(Path(path).stem)}_{i}_methods"
            grid = methods_grid(explanations, index=i, absolute=args.absolute)
            grid.write_html(f"{stem}.html", include_plotlyjs="cdn")
            png.write(grid, f"{stem}.png")
    if png.problem:
        print(f"explainer explain: PNG figures skipped ({png.problem}); the HTML figures were written.", file=sys.stderr)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['image']}  {row['method']:<22} {row['label']} ({row['target']})  "
              f"{row['seconds']:.2f} s/image  -> {row['out']}")
    return 0


class _PngWriter:
    """PNG export through kaleido, which needs a Chromium; after the first failure it stops trying."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.problem: str | None = None
        if enabled and "BROWSER_PATH" not in os.environ and Path(CHROMIUM).exists():
            os.environ["BROWSER_PATH"] = CHROMIUM

    def write(self, figure: go.Figure, path: str) -> str | None:
        if self.problem or not self.enabled:
            return None
        try:
            figure.write_image(path)
        except Exception as exc:  # kaleido missing, no Chromium, or the browser failed to start
            message = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            self.problem = f"kaleido could not render: {message[:200]}; install Chromium at {CHROMIUM} for PNGs"
            return None
        return path


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "image"
