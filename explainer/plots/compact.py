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
    """An (H, W, 3|4) uint8 array as a ``data:image/png;base64,...`` URI.

    zlib level 1: a 224 px photo encodes in 3.7 ms instead of 13.9 ms at PIL's default 6, for 6 % more bytes
    (92 vs 87 KB) – a learner waits on the encoding of every new figure, the bytes cross a local network once.
    """
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
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


def compact_overlays(figure: go.Figure) -> go.Figure:
    """``figure`` with every heatmap drawn over an image trace on the same axes composited into that image
    (one PNG per panel, the heatmap's colour scale, its alpha and the trace's opacity), in place.

    The browser then decodes images instead of drawing float heatmaps cell by cell; the picture is the same
    (to 8-bit colour), the image takes the heatmap's name, its hover values are given up, and its colour bar is kept by an
    empty marker trace. Every other trace is left as it is; image traces become PNG as in
    :func:`compact_images`."""
    compact_images(figure)
    kept, bars = [], []
    for trace in figure.data:
        if trace.type == "heatmap" and trace.z is not None and trace.colorscale:
            photo = _image_under(figure, trace)
            if photo is not None:
                photo.update(source=png_source(_composite(photo, trace)), z=None, colormodel="rgb", hoverinfo="skip",
                             name=trace.name)
                if trace.showscale:
                    bars.append(_colour_bar(trace))
                continue
        kept.append(trace)
    figure.data = kept
    for bar in bars:
        figure.add_trace(bar)
    return figure


def _image_under(figure: go.Figure, heatmap: go.Heatmap) -> go.Image | None:
    """The last image trace before ``heatmap`` on its axes, if it covers the heatmap's grid."""
    axes = (heatmap.xaxis or "x", heatmap.yaxis or "y")
    found = None
    for trace in figure.data:
        if trace is heatmap:
            break
        if trace.type == "image" and (trace.xaxis or "x", trace.yaxis or "y") == axes:
            found = trace
    if found is None or found.source is None:
        return None
    if _decode(found.source).shape[:2] != np.asarray(heatmap.z).shape:
        return None
    return found


def _decode(source: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))


def _colours(colorscale: tuple | list) -> tuple[np.ndarray, np.ndarray]:
    """Stops and their RGBA colours (0–1) of a plotly colour scale given as ``[[stop, "rgba(...)"|"rgb(...)"], ...]``."""
    stops, colours = [], []
    for stop, colour in colorscale:
        inside = colour[colour.index("(") + 1 : colour.rindex(")")].split(",")
        values = [float(v) for v in inside]
        rgba = [v / 255 for v in values[:3]] + [values[3] if len(values) == 4 else 1.0]
        stops.append(float(stop))
        colours.append(rgba)
    return np.asarray(stops), np.asarray(colours)


def _composite(photo: go.Image, heatmap: go.Heatmap) -> np.ndarray:
    values = np.asarray(heatmap.z, dtype=np.float64)
    low = float(heatmap.zmin) if heatmap.zmin is not None else float(np.nanmin(values))
    high = float(heatmap.zmax) if heatmap.zmax is not None else float(np.nanmax(values))
    position = np.clip((np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12), 0.0, 1.0)
    stops, colours = _colours(heatmap.colorscale)
    rgba = np.stack([np.interp(position, stops, colours[:, c]) for c in range(4)], axis=-1)
    alpha = rgba[..., 3:] * (1.0 if heatmap.opacity is None else float(heatmap.opacity))
    base = _decode(photo.source).astype(np.float64) / 255
    return np.round((alpha * rgba[..., :3] + (1 - alpha) * base) * 255).astype(np.uint8)


def _colour_bar(heatmap: go.Heatmap) -> go.Scatter:
    """An empty marker trace that draws ``heatmap``'s colour bar (the heatmap itself is in the image now)."""
    return go.Scatter(
        x=[None], y=[None], mode="markers", xaxis=heatmap.xaxis, yaxis=heatmap.yaxis, hoverinfo="skip",
        showlegend=False,
        marker={"colorscale": heatmap.colorscale, "cmin": heatmap.zmin, "cmax": heatmap.zmax, "cmid": heatmap.zmid,
                "showscale": True, "colorbar": heatmap.colorbar.to_plotly_json(), "color": [heatmap.zmin]},
    )
