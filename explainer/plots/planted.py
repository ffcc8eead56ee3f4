"""Figures for the planted benchmark (:func:`explainer.planted_benchmark`): the report card and the timeline.

The report card draws each (kind, method) score with its 95 % interval over seeds, one panel per kind; a
method that beats its baseline is a filled green circle, one that does not an open red circle, a baseline
or a row without one grey. The timeline puts the measured shortcut reliance (accuracy lost when the
shortcut is flipped) beside each explanation's share of attribution on the shortcut, per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.errors import InputError

_TITLES = {
    "reliance": "Measured reliance: accuracy lost when the shortcut is flipped",
    "pixels": "Pixel maps: shortcut share (uses − ignores)",
    "patching": "Patching: restoration share on the shortcut (uses − ignores)",
    "concepts": "Concepts: importance share on the shortcut (uses − ignores)",
    "data": "Data attribution: precision@k of mislabels",
    "timeline": "Timeline: Pearson r with reliance over epochs",
}
_GOOD, _BAD, _NEUTRAL = "#2ca02c", "#d62728", "#7f7f7f"


def _rows(report: Any) -> list[Mapping[str, Any]]:
    rows = report.to_dict()["rows"] if hasattr(report, "to_dict") else report
    if not isinstance(rows, Sequence) or not rows:
        raise InputError("planted_report_figure needs a PlantedReport or its rows (report.to_dict()['rows']).")
    return list(rows)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def planted_report_figure(report: Any) -> go.Figure:
    """The report card: one panel per kind, each method's score with its interval over seeds."""
    rows = _rows(report)
    kinds = list(dict.fromkeys(row["kind"] for row in rows))
    figure = make_subplots(rows=len(kinds), cols=1, subplot_titles=[_TITLES.get(k, k) for k in kinds],
                           vertical_spacing=0.35 / max(len(kinds), 1))
    for index, kind in enumerate(kinds, start=1):
        chosen = [row for row in rows if row["kind"] == kind]
        scores = np.array([_number(r["score"]) for r in chosen], dtype=np.float32)
        low = np.array([_number(r["ci_low"]) for r in chosen], dtype=np.float32)
        high = np.array([_number(r["ci_high"]) for r in chosen], dtype=np.float32)
        colours = [_NEUTRAL if r["baseline"] is None else _GOOD if r["beats_baseline"] else _BAD for r in chosen]
        symbols = ["circle" if r["baseline"] is None or r["beats_baseline"] else "circle-open" for r in chosen]
        text = [f"{r['method']}: {_number(r['score']):.3f} (n = {r['n']})"
                + (f"<br>vs {r['baseline']}: {'beats it' if r['beats_baseline'] else 'does not beat it'}"
                   if r["baseline"] else "") for r in chosen]
        figure.add_trace(go.Scatter(
            x=scores, y=[r["method"] for r in chosen], mode="markers", showlegend=False,
            marker={"color": colours, "symbol": symbols, "size": 10, "line": {"width": 2, "color": colours}},
            error_x={"type": "data", "symmetric": False, "array": np.nan_to_num(high - scores),
                     "arrayminus": np.nan_to_num(scores - low), "color": "#444"},
            hovertext=text, hoverinfo="text"), row=index, col=1)
        figure.add_vline(x=0, line={"color": "#bbb", "dash": "dot"}, row=index, col=1)
        figure.update_yaxes(autorange="reversed", row=index, col=1)
    figure.update_layout(height=max(320, 26 * len(rows) + 90 * len(kinds)), margin={"l": 10, "r": 10, "t": 40, "b": 30},
                         title="Which explanations find the truth? (95 % t-intervals over seeds)")
    return figure


def planted_timeline_figure(timeline: pd.DataFrame | Sequence[Mapping[str, Any]]) -> go.Figure:
    """Per epoch: the measured reliance (left axis) and each explanation's shortcut share (right axis)."""
    frame = timeline if isinstance(timeline, pd.DataFrame) else pd.DataFrame(list(timeline))
    if frame.empty or "epoch" not in frame or "flip_drop" not in frame:
        raise InputError("planted_timeline_figure needs the report's timeline (planted_benchmark(..., timeline=True)).")
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = frame["epoch"].to_numpy()
    figure.add_trace(go.Scatter(x=epochs, y=frame["flip_drop"].to_numpy(dtype=np.float32), name="reliance (flip drop)",
                                line={"color": "black", "width": 3}), secondary_y=False)
    figure.add_trace(go.Scatter(x=epochs, y=frame["accuracy"].to_numpy(dtype=np.float32), name="test accuracy",
                                line={"color": "black", "dash": "dot"}), secondary_y=False)
    for name in (c for c in frame.columns if c.startswith("pixels:")):
        figure.add_trace(go.Scatter(x=epochs, y=frame[name].to_numpy(dtype=np.float32),
                                    name=f"{name.split(':', 1)[1]} shortcut share", mode="lines+markers"),
                         secondary_y=True)
    figure.update_xaxes(title="epoch")
    figure.update_yaxes(title="accuracy / reliance", range=[0, 1.05], secondary_y=False)
    figure.update_yaxes(title="attribution share on the shortcut", rangemode="tozero", secondary_y=True)
    figure.update_layout(title="When does the network use the shortcut, and does the explanation notice?",
                         height=420, margin={"l": 10, "r": 10, "t": 50, "b": 30}, legend={"orientation": "h", "y": -0.2})
    return figure
