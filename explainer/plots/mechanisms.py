"""Figures for mechanisms: where patching restores the answer, the concepts a layer uses, TCAV scores.
Pure functions of the result objects; every estimate is drawn with its 95 % interval where it has one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.inside.concepts import Concepts
from explainer.inside.patching import PatchResult
from explainer.inside.tcav import TcavResult
from explainer.plots.inside import _rgb
from explainer.stats import Interval


def _errors(intervals: Sequence[Interval]) -> dict:
    """Plotly asymmetric error bars from intervals (none where an interval is undefined, n < 2)."""
    means = np.array([i.mean for i in intervals], dtype=np.float64)
    high = np.array([i.high for i in intervals], dtype=np.float64) - means
    low = means - np.array([i.low for i in intervals], dtype=np.float64)
    if not np.isfinite(high).any():
        return {}
    return {"type": "data", "symmetric": False, "array": np.nan_to_num(high).astype(np.float32),
            "arrayminus": np.nan_to_num(low).astype(np.float32), "thickness": 1.2}


def patch_figure(result: PatchResult) -> go.Figure:
    """Restored fraction per site: bars in network order (layers, channels) with their intervals, or a map
    over the layer's grid for positions (1 = the site alone brings the clean answer back)."""
    pairs = result.pairs
    title = (f"Activation patching: share of the {result.metric}'s clean – corrupted gap restored "
             f"({pairs} pair{'s' if pairs != 1 else ''}{'' if pairs > 1 else ', no interval'})")
    if result.granularity == "position" and result.grid is not None:
        grid = result.site_map().astype(np.float32)
        fig = go.Figure(go.Heatmap(z=grid, colorscale="RdBu", zmid=0, colorbar={"title": "restored"},
                                   hovertemplate="row %{y}, col %{x}: %{z:.1%}<extra></extra>"))
        fig.update_yaxes(autorange="reversed", title=f"{result.layers[0]} rows")
        fig.update_xaxes(title="columns")
        fig.update_layout(title=title, height=420)
        return fig
    means = result.means.astype(np.float32)
    fig = go.Figure(go.Bar(
        x=result.sites, y=means, error_y=_errors(result.intervals),
        marker_color=["#54a24b" if m >= 0.99 else "#4c78a8" for m in np.nan_to_num(means)],
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888", annotation_text="fully restored")
    fig.add_hline(y=0.0, line_color="#bbb")
    fig.update_layout(title=title, yaxis_title="restored fraction", xaxis_title=result.granularity,
                      height=420, showlegend=False)
    fig.update_xaxes(tickangle=-60, tickfont={"size": 9})
    return fig


def patch_pairs_figure(result: PatchResult) -> go.Figure:
    """Pairs × sites heatmap of the restored fraction: how consistent the answer's location is across pairs."""
    fig = go.Figure(go.Heatmap(z=result.restored.astype(np.float32), x=result.sites,
                               y=[f"pair {p} ({result.target_labels[p]})" for p in range(result.pairs)],
                               colorscale="RdBu", zmid=0, colorbar={"title": "restored"},
                               hovertemplate="%{y}, %{x}: %{z:.1%}<extra></extra>"))
    fig.update_layout(title="Restored fraction for each pair and site", height=200 + 24 * result.pairs)
    fig.update_xaxes(tickangle=-60, tickfont={"size": 9})
    return fig


def concepts_figure(result: Concepts, crops_per_concept: int = 4) -> go.Figure:
    """One row per concept, most important first: its importance (target-logit drop when removed, with the
    interval over images) as a bar, then its top crops."""
    order = sorted(range(len(result.importance)), key=lambda k: -np.nan_to_num(result.importance[k].mean, nan=-np.inf))
    shown = [min(crops_per_concept, len(result.top_crops[k])) for k in order]
    cols = 1 + max(shown, default=1)
    rows = len(order)
    fig = make_subplots(rows=rows, cols=cols, column_widths=[0.34] + [0.66 / (cols - 1)] * (cols - 1),
                        horizontal_spacing=0.01, vertical_spacing=0.02)
    peak = max((abs(i.high) if math.isfinite(i.high) else abs(i.mean) for i in result.importance), default=1.0)
    for row, k in enumerate(order, start=1):
        interval = result.importance[k]
        fig.add_trace(go.Bar(x=[np.float32(interval.mean)], y=[f"concept {k}"], orientation="h",
                             error_x=_errors([interval]), marker_color="#4c78a8",
                             hovertemplate=f"concept {k}: logit drop %{{x:.3g}} ({interval.n} images)<extra></extra>"),
                      row=row, col=1)
        fig.update_xaxes(range=[min(0.0, -0.1 * peak), 1.1 * peak or 1.0], row=row, col=1,
                         showticklabels=row == rows)
        for col, index in enumerate(result.top_crops[k][:crops_per_concept], start=2):
            fig.add_trace(go.Image(z=_rgb(result.crops[index]), hoverinfo="skip"), row=row, col=col)
            fig.update_xaxes(visible=False, row=row, col=col)
            fig.update_yaxes(visible=False, row=row, col=col)
    fig.update_layout(title=f"Concepts of {result.layer}: importance for the class and the crops that show them most",
                      height=90 * rows + 80, showlegend=False, margin={"l": 90, "r": 10, "t": 50, "b": 30})
    return fig


def tcav_figure(result: TcavResult) -> go.Figure:
    """Per layer: the concept's TCAV score (interval over runs) beside the null – the permutation test's
    pseudo-concept means, or Kim et al.'s random-vs-random scores; layers without a significant difference
    after Holm are drawn grey – no claim there."""
    null_name = "random subsets (mean score)" if result.test == "permutation" else "random concepts"
    fig = go.Figure()
    for row in result.layers:
        fig.add_trace(go.Box(y=np.asarray(row.null_scores, dtype=np.float32), x=[row.layer] * len(row.null_scores),
                             name=null_name, marker_color="#bab0ac", boxpoints="all", jitter=0.4,
                             showlegend=row is result.layers[0], offsetgroup="null"))
    fig.add_trace(go.Scatter(
        x=[row.layer for row in result.layers], y=[np.float32(row.score.mean) for row in result.layers],
        error_y=_errors([row.score for row in result.layers]), mode="markers", name="concept",
        marker={"size": 12, "color": ["#e45756" if row.significant else "#8c8c8c" for row in result.layers]},
        text=[f"Holm p = {row.p_adjusted:.2g}" + ("" if row.significant else " – no claim") for row in result.layers],
        hovertemplate="%{x}: %{y:.2f}, %{text}<extra></extra>"))
    against = (f"{result.permutations} random subsets" if result.test == "permutation"
               else f"{result.runs} random concepts (Kim et al.'s t-test)")
    fig.update_layout(title=f"TCAV for {result.target_label!r}: concept vs {against}",
                      yaxis={"title": "TCAV score", "range": [0, 1.05]}, height=380, boxmode="group")
    return fig
