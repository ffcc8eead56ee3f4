"""Figures that a browser draws fast: image traces sent as PNG instead of pixel arrays.

Plotly draws an ``Image`` trace given as ``z`` (an H × W × 3 array) pixel by pixel on a canvas and
sends it as nested numbers (a 224 px photo is ~0.5 MB of JSON); given as ``source`` (a PNG data
URI) the browser decodes it natively. The pixels are the same (PNG is lossless).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image


def png_source(pixels: np.ndarray) -> str:
    """An (H, W, 3|4) uint8 array as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compact_images(figure: go.Figure) -> go.Figure:
    """``figure`` with every RGB(A) uint8 ``Image`` trace given as a PNG ``source`` instead of ``z`` (in place)."""
    for trace in figure.data:
        if trace.type != "image" or trace.z is None or trace.source is not None:
            continue
        pixels = np.asarray(trace.z)
        if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4) or pixels.min() < 0 or pixels.max() > 255:
            continue
        colormodel = "rgba" if pixels.shape[-1] == 4 else "rgb"
        trace.update(source=png_source(pixels.astype(np.uint8)), z=None, colormodel=colormodel)
    return figure
