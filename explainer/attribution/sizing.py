"""Method parameters chosen for one image size, carried over to images of another size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from explainer.attribution.registry import get_method


def params_for_size(method: str, params: Mapping[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """``params`` for images of ``size`` (height, width): an optional whole-number parameter set larger than
    the shorter side (a patch or stride in pixels, e.g. occlusion's window picked on a 224 px photo) goes back
    to automatic (None), so the method chooses it for the smaller image."""
    short = min(size)
    fitted = dict(params)
    for param in get_method(method).params:
        value = fitted.get(param.name)
        if param.optional and param.type is int and isinstance(value, int) and value > short:
            fitted[param.name] = None
    return fitted
