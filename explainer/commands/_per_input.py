"""Per-input loops for commands over several images: a bad input becomes a row, the good ones are kept.

``predict``, ``explain`` and ``check`` load every image on its own (:func:`load_inputs`), run
the work on the good ones, and when a batch fails retry it one image at a time
(:func:`per_image`), so one bad image never costs the others' results. :func:`finish`
prints the rows (JSON or text), reports each failed input on stderr and returns the exit
status: 0 when everything worked, :data:`EXIT_PARTIAL` when some inputs failed, 2 when all did.
:func:`check_out_folder` checks an output folder before any work starts.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from explainer.errors import ExplainerError, InputError

#: Exit status when some inputs failed and the others' results were printed.
EXIT_PARTIAL = 1
#: Exit status when every input failed (as for any other error).
EXIT_FAILED = 2


@dataclass
class Inputs:
    """The images that loaded (with their names and positions) and an error row per input that did not."""

    names: list[str] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def load_inputs(paths: Sequence[str]) -> Inputs:
    """Load each image on its own; an input that cannot be read becomes ``{"image", "error"}``."""
    from explainer.data.images import load_image

    inputs = Inputs()
    for position, path in enumerate(paths):
        try:
            image = load_image(path)
        except ExplainerError as exc:
            inputs.failed.append(error_row(path, exc, position=position))
            continue
        inputs.names.append(path)
        inputs.images.append(image)
        inputs.positions.append(position)
    return inputs


def error_row(image: str, error: BaseException | str, *, position: int = 0, **identity: Any) -> dict[str, Any]:
    """The row that stands for a failed input: its identity and the error message."""
    return {"image": image, **identity, "error": str(error), "_position": position}


def per_image(
    inputs: Inputs,
    work: Callable[[list[str], list[Image.Image]], list[dict[str, Any]]],
    **identity: Any,
) -> list[dict[str, Any]]:
    """``work(names, images)`` → one row per image; when the batch fails, retry image by image.

    An image whose own run fails becomes an error row carrying ``identity`` (e.g. the method).
    Rows carry the input's position so :func:`finish` prints them in the order given.
    """
    if not inputs.images:
        return []
    try:
        rows = work(inputs.names, inputs.images)
        return [{**row, "_position": position} for row, position in zip(rows, inputs.positions)]
    except ExplainerError as exc:
        if len(inputs.images) == 1:
            return [error_row(inputs.names[0], exc, position=inputs.positions[0], **identity)]
    rows = []
    for name, image, position in zip(inputs.names, inputs.images, inputs.positions):
        try:
            rows += [{**row, "_position": position} for row in work([name], [image])]
        except ExplainerError as exc:
            rows.append(error_row(name, exc, position=position, **identity))
    return rows


def finish(
    command: str,
    rows: list[dict[str, Any]],
    *,
    as_json: bool,
    print_text: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Print good and failed rows in input order; failed inputs also on stderr; the exit status."""
    from explainer.commands._json import print_json

    ordered = [dict(row) for row in sorted(rows, key=lambda row: row.get("_position", 0))]
    for row in ordered:
        row.pop("_position", None)
    good = [row for row in ordered if "error" not in row]
    failed = [row for row in ordered if "error" in row]
    if as_json:
        print_json(ordered)
    elif good:
        print_text(good)
    for row in failed:
        print(f"explainer {command}: {row['image']}: {row['error']}", file=sys.stderr)
    if failed:
        print(f"explainer {command}: {len(failed)} of {len(ordered)} result(s) failed"
              + ("; the others were printed." if good else "."), file=sys.stderr)
    return 0 if not failed else EXIT_PARTIAL if good else EXIT_FAILED


def check_out_folder(path: str | Path) -> Path:
    """Create ``path`` (a folder) and check that a file can be written there, before any work starts."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out-dir {folder} is a file, not a folder; choose a folder for the figures.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".explainer-write-test-"):
            pass
    except OSError as exc:
        raise InputError(
            f"Cannot write to --out-dir {folder} ({exc.strerror or exc}); choose a folder you can write to."
        ) from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"Cannot write to --out-dir {folder}; choose a folder you can write to.")
    return folder


def save_png(pixels: Any, path: str | Path) -> str:
    """Write ``(C, H, W)`` pixels in [0, 1] (1 or 3 channels) as a PNG file; returns the path."""
    import numpy as np
    from PIL import Image

    array = (pixels.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)
    return str(path)
