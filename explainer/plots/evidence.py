"""Figures for dataset-scale evidence (:func:`explainer.evaluate`): forest plot, mean curves, per-image scatter.

Controls are drawn in grey with open diamond markers and a dotted interval line, methods in colour with
filled circles; a method flagged for not beating the edge or brightness control on a metric gets a
red ✗ beside its interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.errors import InputError
from explainer.evidence.controls import is_control
from explainer.evidence.evaluation import Evaluation
from explainer.evidence.metrics import METRICS

_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_CONTROL = "#7f7f7f"
_CURVE_TITLES = {
    "deletion_morf": "Deletion, most relevant first (lower is better)",
    "deletion_lerf": "Deletion, least relevant first (higher is better)",
    "insertion": "Insertion on a blurred canvas (higher is better)",
    "road_morf": "ROAD deletion (lower is better)",
}


def _colour(result: Evaluation, method: str) -> str:
    if is_control(method):
        return _CONTROL
    return _PALETTE[result.compared.index(method) % len(_PALETTE)]


def forest_plot(result: Evaluation, metrics: Sequence[str] | None = None) -> go.Figure:
    """Mean with its 95 % interval for every method and control, one panel per metric.

    Controls are grey open diamonds with dotted intervals; ✗ marks a method that does not beat the edge
    or brightness control on that metric. Each panel's title says which direction is better.
    """
    chosen = list(metrics) if metrics is not None else result.available_metrics()
    if not chosen:
        raise InputError("The evaluation has no metric values to plot.")
    unknown = [m for m in chosen if m not in result.metrics]
    if unknown:
        raise InputError(f"Metric(s) {unknown} were not evaluated; the evaluation has: {', '.join(result.metrics)}.")
    columns = min(3, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    titles = [f"{METRICS[m].title}<br><sup>{METRICS[m].better} is better</sup>" for m in chosen]
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.18,
                           vertical_spacing=0.5 / max(rows, 1))
    names = result.methods[::-1]  # first method on top
    shown: set[str] = set()
    for k, metric in enumerate(chosen):
        row, col = k // columns + 1, k % columns + 1
        for method in names:
            interval = result.interval(method, metric)
            if interval.n == 0:
                continue
            control = is_control(method)
            low = interval.low if math.isfinite(interval.low) else interval.mean
            high = interval.high if math.isfinite(interval.high) else interval.mean
            figure.add_trace(go.Scatter(
                x=np.array([interval.mean], dtype=np.float32), y=[method], mode="markers",
                marker={"symbol": "diamond-open" if control else "circle", "size": 10, "color": _colour(result, method)},
                error_x={"type": "data", "symmetric": False, "array": [high - interval.mean],
                         "arrayminus": [interval.mean - low], "color": _colour(result, method),
                         "thickness": 1.5 if control else 2.5},
                name=method, legendgroup=method, showlegend=method not in shown,
                hovertemplate=f"{method}<br>{metric}: %{{x:.3f}} (95 % CI {low:.3f} to {high:.3f}, n={interval.n})"
                              "<extra></extra>",
            ), row=row, col=col)
            shown.add(method)
            if not control and result.flagged(method, metric):
                figure.add_trace(go.Scatter(
                    x=np.array([high], dtype=np.float32), y=[method], mode="text", text=["  ✗"],
                    textposition="middle right", textfont={"color": "#d62728", "size": 14}, showlegend=False,
                    hovertext=f"{method} does not beat the edge or brightness control on {metric}", hoverinfo="text",
                ), row=row, col=col)
    figure.update_layout(
        title=f"Which map can I trust? {result.n} image(s), mean and 95 % interval; grey ◇ = controls, "
              "✗ = does not beat a control",
        height=260 * rows + 120, legend={"traceorder": "reversed"}, margin={"t": 110},
    )
    return figure


def mean_curves(result: Evaluation, curves: Sequence[str] = ("deletion_morf", "insertion"),
                methods: Sequence[str] | None = None) -> go.Figure:
    """Mean deletion/insertion curves over images with a band of ± 1.96 standard errors, per method."""
    available = [c for c in curves if c in result.metrics]
    if not available:
        raise InputError(f"None of {list(curves)} were evaluated; the evaluation has: {', '.join(result.metrics)}.")
    chosen = list(methods) if methods is not None else result.methods
    figure = make_subplots(rows=1, cols=len(available), shared_yaxes=True,
                           subplot_titles=[_CURVE_TITLES[c] for c in available])
    x = result.fractions.astype(np.float32)
    for col, curve in enumerate(available, start=1):
        for method in chosen:
            values = result.curves(method, curve)
            mean = values.mean(axis=0)
            half = 1.96 * values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0 * mean
            colour = _colour(result, method)
            figure.add_trace(go.Scatter(
                x=np.concatenate([x, x[::-1]]), y=np.concatenate([mean + half, (mean - half)[::-1]]).astype(np.float32),
                fill="toself", fillcolor=_with_alpha(colour, 0.15), line={"width": 0}, hoverinfo="skip",
                showlegend=False, legendgroup=method,
            ), row=1, col=col)
            figure.add_trace(go.Scatter(
                x=x, y=mean.astype(np.float32), mode="lines", name=method, legendgroup=method, showlegend=col == 1,
                line={"color": colour, "dash": _dash(result, method)},
            ), row=1, col=col)
        figure.update_xaxes(title_text="fraction of pixels perturbed", row=1, col=col)
    figure.update_yaxes(title_text="target probability", row=1, col=1)
    figure.update_layout(title=f"Mean curves over {result.n} image(s), band = 95 % interval of the mean")
    return figure


def _dash(result: Evaluation, method: str) -> str:
    """Solid for methods; a different broken line for each control (they share the grey)."""
    if not is_control(method):
        return "solid"
    return ("dot", "dash", "dashdot", "longdash")[result.controls.index(method) % 4]


def _with_alpha(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def method_scatter(result: Evaluation, a: str, b: str, metric: str) -> go.Figure:
    """Per-image values of ``metric`` for method ``a`` against ``b``, with the diagonal; the title says who wins."""
    for name in (a, b):
        if name not in result.methods:
            raise InputError(f"{name!r} was not evaluated; the evaluation has: {', '.join(result.methods)}.")
    if metric not in result.metrics:
        raise InputError(f"{metric!r} was not evaluated; the evaluation has: {', '.join(result.metrics)}.")
    x, y = result.scores(a, metric), result.scores(b, metric)
    names = [row["name"] for row in result.rows]
    finite = np.isfinite(x) & np.isfinite(y)
    low = float(min(x[finite].min(), y[finite].min())) if finite.any() else 0.0
    high = float(max(x[finite].max(), y[finite].max())) if finite.any() else 1.0
    pair = result._pair(a, b, metric)
    figure = go.Figure([
        go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"color": _CONTROL, "dash": "dash"},
                   name="equal", hoverinfo="skip"),
        go.Scatter(x=x.astype(np.float32), y=y.astype(np.float32), mode="markers", text=names, name="images",
                   marker={"color": _colour(result, a), "size": 7, "opacity": 0.7},
                   hovertemplate="%{text}<br>" + f"{a}: %{{x:.3f}}<br>{b}: %{{y:.3f}}<extra></extra>"),
    ])
    figure.update_layout(title=f"{metric} per image ({METRICS[metric].better} is better)<br><sup>{pair['words']}</sup>",
                         xaxis_title=a, yaxis_title=b)
    return figure
