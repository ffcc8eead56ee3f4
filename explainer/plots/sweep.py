"""Figures for sweeps: a heatmap over two settings, accuracy against a setting with bands, cost, gradient norms."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explainer.errors import InputError
from explainer.learn.sweep_results import RESULT_FIELDS, SweepResults

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _check_setting(results: SweepResults, name: str | None) -> None:
    if name is not None and name not in results.settings:
        raise InputError(f"{name!r} is not a setting of this sweep; it varied: {', '.join(results.settings)}.")


#: The row label of a heatmap over one setting (an empty category label cannot be clicked in plotly).
_ONE_ROW = "mean"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fixed(results: SweepResults, shown: set[str], fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    """Values for the settings a figure does not show: as given, else those of the best configuration."""
    chosen = dict(fixed or {})
    for name in chosen:
        _check_setting(results, name)
    best = results.best
    return {name: chosen.get(name, best[name]) for name in results.settings if name not in shown}


def _rows(results: SweepResults, fixed: Mapping[str, Any]) -> pd.DataFrame:
    summary = results.summary()
    for name, value in fixed.items():
        summary = summary[summary[name] == value]
    return summary


def _subtitle(fixed: Mapping[str, Any]) -> str:
    return f" ({', '.join(f'{k}={_text(v)}' for k, v in fixed.items())})" if fixed else ""


def sweep_heatmap(results: SweepResults, x: str | None = None, y: str | None = None,
                  fixed: Mapping[str, Any] | None = None) -> go.Figure:
    """Mean test accuracy over two settings (``x`` columns, ``y`` rows); cells where runs diverged say so.

    Defaults: the sweep's first two settings (one setting gives a single row). Other settings are held
    at ``fixed`` or at the best configuration's values. Each cell's ``customdata`` holds its settings,
    so a dashboard can open the run behind a clicked cell.
    """
    x = x or results.settings[0]
    y = y if y is not None else (results.settings[1] if len(results.settings) > 1 and results.settings[1] != x else None)
    _check_setting(results, x)
    _check_setting(results, y)
    held = _fixed(results, {x} | ({y} if y else set()), fixed)
    summary = _rows(results, held)
    xs = results.grid[x]
    ys = results.grid[y] if y else [None]
    z = np.full((len(ys), len(xs)), np.nan)
    text = [["" for _ in xs] for _ in ys]
    custom: list[list[dict | None]] = [[None for _ in xs] for _ in ys]
    for _, row in summary.iterrows():
        i = ys.index(row[y]) if y else 0
        j = xs.index(row[x])
        z[i, j] = 100 * row["mean"]
        interval = "" if not math.isfinite(row["ci_low"]) else f"<br>{100 * row['ci_low']:.1f}–{100 * row['ci_high']:.1f}"
        diverged = f"<br>diverged {int(row['diverged'])}/{int(row['n'])}" if row["diverged"] else ""
        text[i][j] = f"{100 * row['mean']:.1f} %{interval}{diverged}"
        custom[i][j] = {key: _plain(value) for key, value in {**held, x: row[x], **({y: row[y]} if y else {})}.items()}
    figure = go.Figure(go.Heatmap(
        z=z, x=[_text(v) for v in xs], y=[_text(v) for v in ys] if y else [_ONE_ROW], text=text, texttemplate="%{text}",
        customdata=custom, colorscale="Viridis", zmin=0, zmax=100, colorbar={"title": "test acc. %"},
        hovertemplate=f"{x}=%{{x}}" + (f", {y}=%{{y}}" if y else "") + "<br>%{text}<extra></extra>",
    ))
    # Heatmaps cannot be selected in plotly.js: an invisible marker on each cell carries the click (and hover).
    cells = [(j, i) for i in range(len(ys)) for j in range(len(xs)) if custom[i][j] is not None]
    figure.add_trace(go.Scatter(
        x=[_text(xs[j]) for j, _ in cells], y=[_text(ys[i]) if y else _ONE_ROW for _, i in cells], mode="markers",
        marker={"symbol": "square", "size": 36, "opacity": 0.001, "color": "white"}, showlegend=False,
        selected={"marker": {"opacity": 0.001}}, unselected={"marker": {"opacity": 0.001}},
        customdata=[custom[i][j] for j, i in cells], text=[text[i][j] for j, i in cells],
        hovertemplate=f"{x}=%{{x}}" + (f", {y}=%{{y}}" if y else "") + "<br>%{text}<br>(click: open a run)<extra></extra>",
    ))
    figure.data[0].hoverinfo = "skip"
    for _, row in summary[summary["diverged"] > 0].iterrows():
        figure.add_shape(type="rect", xref="x", yref="y", line={"color": "red", "width": 3},
                         x0=xs.index(row[x]) - 0.5, x1=xs.index(row[x]) + 0.5,
                         y0=(ys.index(row[y]) if y else 0) - 0.5, y1=(ys.index(row[y]) if y else 0) + 0.5)
    figure.update_xaxes(title_text=x, type="category")
    figure.update_yaxes(title_text=y or "", type="category")
    figure.update_layout(title=f"Mean test accuracy over {len(results.seeds)} seeds{_subtitle(held)}; red: diverged runs")
    return figure


def accuracy_by_setting(results: SweepResults, setting: str | None = None, by: str | None = None,
                        fixed: Mapping[str, Any] | None = None) -> go.Figure:
    """Mean test accuracy against ``setting`` with a 95 % band over seeds, one line per value of ``by``
    (e.g. learning rate × activation). A numeric ``setting`` spanning over 10× is drawn on a log axis."""
    setting = setting or results.settings[0]
    by = by if by is not None else next((name for name in results.settings if name != setting), None)
    _check_setting(results, setting)
    _check_setting(results, by)
    held = _fixed(results, {setting} | ({by} if by else set()), fixed)
    summary = _rows(results, held)
    figure = go.Figure()
    groups = results.grid[by] if by else [None]
    values = results.grid[setting]
    numeric = all(isinstance(v, (int, float)) for v in values)
    for index, group in enumerate(groups):
        part = summary[summary[by] == group] if by else summary
        part = part.set_index(setting).reindex(values)
        xs = values if numeric else [_text(v) for v in values]
        color = _COLORS[index % len(_COLORS)]
        name = f"{by}={_text(group)}" if by else "mean"
        low, high = (100 * part["ci_low"]).tolist(), (100 * part["ci_high"]).tolist()
        figure.add_trace(go.Scatter(x=[*xs, *xs[::-1]], y=[*high, *low[::-1]], fill="toself", fillcolor=color,
                                    opacity=0.2, line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=name))
        diverged = part["diverged"].fillna(0).astype(int).tolist()
        figure.add_trace(go.Scatter(
            x=xs, y=(100 * part["mean"]).tolist(), mode="lines+markers", name=name, legendgroup=name,
            line={"color": color}, marker={"symbol": ["x" if d else "circle" for d in diverged], "size": 9},
            text=[f"diverged {d}/{int(n)}" if d else "" for d, n in zip(diverged, part["n"].fillna(0))],
            hovertemplate=f"{setting}=%{{x}}<br>%{{y:.1f}} %<br>%{{text}}<extra>{name}</extra>",
        ))
    if numeric and min(values) > 0 and max(values) / min(values) > 10:
        figure.update_xaxes(type="log")
    figure.update_xaxes(title_text=setting)
    figure.update_yaxes(title_text="test accuracy % (band: 95 % interval over seeds)", range=[0, 100])
    figure.update_layout(title=f"Accuracy against {setting}{_subtitle(held)}; ×: diverged runs")
    return figure


def accuracy_vs_seconds(results: SweepResults) -> go.Figure:
    """Every run: test accuracy against training seconds on this machine, one colour per configuration."""
    figure = go.Figure()
    for index, settings in enumerate(results.configurations()):
        runs = [run for run in results.runs if all(run[k] == v for k, v in settings.items())]
        label = ", ".join(f"{k}={_text(v)}" for k, v in settings.items())
        figure.add_trace(go.Scatter(
            x=[run["seconds"] for run in runs], y=[100 * (run["test_accuracy"] or 0.0) for run in runs],
            mode="markers", name=label, marker={"color": _COLORS[index % len(_COLORS)], "size": 9,
                                                "symbol": ["x" if run["status"] == "diverged" else "circle" for run in runs]},
            text=[f"seed {run['seed']}, {run['status']}" for run in runs],
            hovertemplate="%{x:.2f} s, %{y:.1f} %<br>%{text}<extra>" + label + "</extra>",
        ))
    figure.update_xaxes(title_text="training seconds")
    figure.update_yaxes(title_text="test accuracy %", range=[0, 100])
    figure.update_layout(title="What each configuration costs on this machine (×: diverged)")
    return figure


def run_gradient_norms(run: Mapping[str, Any]) -> go.Figure:
    """Per-layer gradient norm by epoch for one run of a sweep (``results.run(...)``), on a log axis:
    in a deep sigmoid network the first layers get gradients orders of magnitude smaller than the last."""
    norms = run.get("grad_norm") or {}
    if not norms:
        raise InputError("This run has no per-layer gradient norms; sweep with telemetry='epoch' (the default).")
    figure = go.Figure()
    for index, (layer, values) in enumerate(norms.items()):
        ys = [np.nan if v is None else v for v in values]
        figure.add_trace(go.Scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=layer,
                                    line={"color": _COLORS[index % len(_COLORS)]}))
    settings = ", ".join(f"{k}={_text(v)}" for k, v in run.items() if k not in RESULT_FIELDS)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(title_text="gradient norm (mean over measured steps)", type="log")
    figure.update_layout(title={"text": f"Per-layer gradient norms<br><sup>{settings} ({run.get('status')})</sup>"})
    return figure


def run_curves(run: Mapping[str, Any]) -> go.Figure:
    """Training and test loss and test accuracy by epoch for one run of a sweep."""
    curves = run.get("curves") or {}
    if not curves.get("train_loss"):
        raise InputError("This run has no curves; open it from the sweep's results, not from its JSON summary.")
    epochs = list(range(1, len(curves["train_loss"]) + 1))
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=epochs, y=curves["train_loss"], name="train loss", line={"color": _COLORS[0]}))
    figure.add_trace(go.Scatter(x=epochs, y=curves["test_loss"], name="test loss", line={"color": _COLORS[1]}))
    figure.add_trace(go.Scatter(x=epochs, y=curves["test_accuracy"], name="test accuracy", yaxis="y2",
                                line={"color": _COLORS[2], "dash": "dot"}))
    settings = ", ".join(f"{k}={_text(v)}" for k, v in run.items() if k not in RESULT_FIELDS)
    figure.update_layout(
        title=f"{settings} ({run.get('status')})", xaxis={"title": "epoch"}, yaxis={"title": "loss"},
        yaxis2={"title": "test accuracy", "overlaying": "y", "side": "right", "range": [0, 1], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure
