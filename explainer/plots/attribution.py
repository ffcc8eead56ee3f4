"""Figures for attribution maps: one image with its heatmap overlaid, and methods side by side.

Normalisation follows Captum's visualisation: values are divided by the 99th percentile of their
absolute values and clipped, so a few extreme pixels do not wash out the map. Signed maps go to
[-1, 1] and use a diverging scale with 0 transparent (blue negative, red positive); absolute maps
go to [0, 1] on a sequential scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.attribution.explanation import Explanation
from explainer.errors import InputError

#: Percentile of |values| mapped to full colour; larger values are clipped.
CLIP_PERCENTILE = 99.0
#: Diverging: negative blue, zero transparent (the image shows through), positive red.
SIGNED_COLORSCALE = [[0.0, "rgba(33,102,172,0.9)"], [0.5, "rgba(247,247,247,0)"], [1.0, "rgba(178,24,43,0.9)"]]
#: Sequential: zero transparent, rising through orange to dark red.
ABSOLUTE_COLORSCALE = [
    [0.0, "rgba(255,255,178,0)"],
    [0.25, "rgba(254,204,92,0.45)"],
    [0.6, "rgba(253,141,60,0.75)"],
    [1.0, "rgba(189,0,38,0.9)"],
]


def normalize_heatmap(values: np.ndarray, signed: bool, percentile: float = CLIP_PERCENTILE) -> np.ndarray:
    """Scale a map by the ``percentile`` of its absolute values and clip: [-1, 1] signed, [0, 1] absolute."""
    data = np.asarray(values, dtype=np.float32)
    data = data if signed else np.abs(data)
    threshold = float(np.percentile(np.abs(data), percentile)) if data.size else 0.0
    if threshold <= 0:
        threshold = float(np.abs(data).max()) if data.size else 0.0
    if threshold <= 0:
        return np.zeros_like(data)
    return np.clip(data / threshold, -1.0 if signed else 0.0, 1.0).astype(np.float32)


def shows_sign(explanation: Explanation, absolute: bool = False) -> bool:
    """Whether a map is drawn signed: the method's values carry a sign and ``absolute`` is off."""
    return explanation.spec.signed and not absolute


def normalized_heatmap(explanation: Explanation, index: int = 0, absolute: bool = False) -> np.ndarray:
    """The map of image ``index`` as float32 ``(H, W)``, normalised as the figures draw it."""
    _check_index(explanation, index)
    signed = shows_sign(explanation, absolute)
    heatmap = explanation.heatmap(absolute=not signed)[index].numpy()
    return normalize_heatmap(heatmap, signed)


def attribution_overlay(
    explanation: Explanation, index: int = 0, absolute: bool = False, opacity: float = 1.0, height: int = 420
) -> go.Figure:
    """Image ``index`` with its attribution heatmap overlaid, with a colour bar.

    Signed methods are drawn with a diverging scale centred on 0 unless ``absolute``; unsigned
    methods (saliency, Grad-CAM, ...) always use the sequential scale.
    """
    signed = shows_sign(explanation, absolute)
    figure = go.Figure()
    for trace in _overlay_traces(explanation, index, signed, opacity, show_scale=True):
        figure.add_trace(trace)
    figure.update_layout(
        title=f"{explanation.spec.title}: {explanation.labels[index]} ({explanation.model_name}, "
        f"{explanation.seconds:.2f} s for {len(explanation.targets)} image(s))",
        height=height,
        margin={"t": 60, "l": 10, "r": 10, "b": 10},
    )
    _image_axes(figure)
    return figure


def methods_grid(explanations: Sequence[Explanation], index: int = 0, absolute: bool = False) -> go.Figure:
    """The image, then each explanation's map of image ``index`` side by side (same normalisation rules)."""
    if not explanations:
        raise InputError("methods_grid needs at least one Explanation.")
    first = explanations[0]
    _check_index(first, index)
    for other in explanations[1:]:
        _check_index(other, index)
        if other.pixels.shape[1:] != first.pixels.shape[1:] or not np.allclose(
            other.pixels[index].numpy(), first.pixels[index].numpy(), atol=1e-4
        ):
            raise InputError(
                f"methods_grid compares maps of the same image; {other.method} explains a different image than "
                f"{first.method} at index {index}."
            )
    titles = ["image"] + [
        f"{e.spec.title}{' (signed)' if shows_sign(e, absolute) else ''}<br>{e.seconds:.2f} s" for e in explanations
    ]
    figure = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.01)
    figure.add_trace(go.Image(z=_rgb(first, index), name="image"), row=1, col=1)
    for column, explanation in enumerate(explanations, start=2):
        for trace in _overlay_traces(explanation, index, shows_sign(explanation, absolute), 1.0, show_scale=False):
            figure.add_trace(trace, row=1, col=column)
    figure.update_layout(
        title={
            "text": f"{first.labels[index]} – {first.model_name}<br><sup>red: more attribution, blue: negative "
            "(signed maps); each map clipped at its 99th percentile of |value|</sup>",
            "yref": "container", "y": 0.96, "yanchor": "top", "pad": {"t": 6},
        },
        height=290 + 20 * (len(titles) > 4),
        width=max(600, 220 * len(titles)),
        margin={"t": 120, "l": 10, "r": 10, "b": 10},
    )
    _image_axes(figure)
    return figure


def _overlay_traces(
    explanation: Explanation, index: int, signed: bool, opacity: float, show_scale: bool
) -> list[go.BaseTraceType]:
    heatmap = normalized_heatmap(explanation, index, absolute=not signed)
    colorbar = {"title": {"text": "normalised<br>attribution" if signed else "normalised<br>|attribution|"}, "len": 0.8}
    return [
        go.Image(z=_rgb(explanation, index), name="image", hoverinfo="skip"),
        go.Heatmap(
            z=heatmap,
            colorscale=SIGNED_COLORSCALE if signed else ABSOLUTE_COLORSCALE,
            zmin=-1.0 if signed else 0.0,
            zmax=1.0,
            zmid=0.0 if signed else None,
            opacity=opacity,
            showscale=show_scale,
            colorbar=colorbar if show_scale else None,
            name=explanation.method,
            hovertemplate="x %{x}, y %{y}<br>normalised attribution %{z:.2f}<extra></extra>",
        ),
    ]


def _rgb(explanation: Explanation, index: int) -> np.ndarray:
    """Pixels of image ``index`` as uint8 ``(H, W, 3)`` (grayscale repeated)."""
    pixels = explanation.pixels[index].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def _image_axes(figure: go.Figure) -> None:
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed")


def _check_index(explanation: Explanation, index: int) -> None:
    count = len(explanation.targets)
    if not 0 <= index < count:
        raise InputError(f"index must be between 0 and {count - 1} ({count} image(s) explained), got {index}.")
