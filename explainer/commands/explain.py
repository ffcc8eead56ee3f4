"""`explainer explain IMAGE... --method M...`: attribution maps as HTML (and PNG when possible) figures."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from explainer.attribution.explanation import explain
from explainer.attribution.registry import get_method
from explainer.commands._options import (
    add_json_option,
    add_method_options,
    add_model_options,
    add_out_option,
    method_params,
    model_from_args,
)
from explainer.commands._per_input import check_out_folder, finish, load_inputs, per_image

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
    add_out_option(parser, "dir", default="explanations", help="folder for the figures")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; the exit status (1 when some images failed: their rows carry the error)."""
    methods, params = method_params(args)
    out = check_out_folder(args.out_dir)  # before any work: a file or an unwritable path fails now, not after the run
    inputs = load_inputs(args.images)
    classifier = model_from_args(args) if inputs.images else None
    png = _PngWriter(enabled=not args.no_png)
    try:
        rows = _explain_all(args, methods, params, out, inputs, classifier, png)
    finally:
        png.close()
    if png.problem:
        print(f"explainer explain: PNG figures skipped ({png.problem}); the HTML figures were written.", file=sys.stderr)
    return finish("explain", rows, as_json=args.json, print_text=_print_text)


def _explain_all(args: argparse.Namespace, methods: list[str], params: dict[str, dict[str, Any]], out: Path,
                 inputs: Any, classifier: Any, png: _PngWriter) -> list[dict[str, Any]]:
    """Every method on every input: the figures written, one row per (image, method)."""
    position_of = {id(image): position for image, position in zip(inputs.images, inputs.positions)}
    maps: dict[int, list[tuple[Any, int]]] = {}  # input position → (explanation, index in it) per method
    rows: list[dict[str, Any]] = list(inputs.failed)
    for method in methods:
        layer = args.layer if get_method(method).needs_layer else None

        def work(names: list[str], images: list, method: str = method, layer: str | None = layer) -> list[dict[str, Any]]:
            assert classifier is not None  # work runs only when some image loaded
            explanation = explain(classifier, images, method=method, target=args.target, layer=layer,
                                  budget_seconds=args.budget, **params[method])
            batch = []
            for i, (path, image) in enumerate(zip(names, images)):
                position = position_of[id(image)]
                maps.setdefault(position, []).append((explanation, i))
                stem = out / f"{_slug(Path(path).stem)}_{position}_{method}"
                figure = attribution_overlay(explanation, index=i, absolute=args.absolute)
                figure.write_html(f"{stem}.html", include_plotlyjs="cdn")
                batch.append({
                    "image": path,
                    "method": method,
                    "target": explanation.targets[i],
                    "label": explanation.labels[i],
                    "seconds": explanation.seconds / len(images),
                    "out": f"{stem}.html",
                    "png": png.write(figure, f"{stem}.png"),
                    "params": explanation.params,
                })
            return batch

        rows += per_image(inputs, work, method=method)
    if len(methods) > 1:
        for path, position in zip(inputs.names, inputs.positions):
            found = maps.get(position, [])
            if len(found) < 2 or len({i for _, i in found}) != 1:  # a method failed, or ran in another batch
                continue
            stem = out / f"{_slug(Path(path).stem)}_{position}_methods"
            grid = methods_grid([explanation for explanation, _ in found], index=found[0][1], absolute=args.absolute)
            grid.write_html(f"{stem}.html", include_plotlyjs="cdn")
            png.write(grid, f"{stem}.png")
    return rows


def _print_text(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"{row['image']}  {row['method']:<22} {row['label']} ({row['target']})  "
              f"{row['seconds']:.2f} s/image  -> {row['out']}")


class _PngWriter:
    """PNG export through kaleido, which needs a Chromium; after the first failure it stops trying."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.problem: str | None = None
        self.server = False
        if enabled and "BROWSER_PATH" not in os.environ and Path(CHROMIUM).exists():
            os.environ["BROWSER_PATH"] = CHROMIUM

    def write(self, figure: go.Figure, path: str) -> str | None:
        if self.problem or not self.enabled:
            return None
        for attempt in (1, 2):  # a browser that starts slowly on a busy machine gets a second, fresh start
            try:
                self._render(figure, path)
                return path
            except Exception as exc:  # kaleido missing, no Chromium, or the browser failed to start
                self.close()
                if attempt == 2 or isinstance(exc, ImportError):
                    message = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
                    self.problem = f"kaleido could not render: {message[:200]}; install Chromium at {CHROMIUM} for PNGs"
        return None

    def _render(self, figure: go.Figure, path: str) -> None:
        if not self.server:  # one browser for every figure of the run (kaleido starts one per call otherwise)
            import kaleido

            kaleido.start_sync_server(silence_warnings=True)
            self.server = True
        with warnings.catch_warnings():  # plotly passes per-call browser options, which a running server ignores
            warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
            figure.write_image(path)

    def close(self) -> None:
        """Stop the browser the first figure started."""
        if self.server:
            import kaleido

            self.server = False
            with contextlib.suppress(Exception):  # a browser that never came up has nothing to stop
                kaleido.stop_sync_server(silence_warnings=True)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "image"
