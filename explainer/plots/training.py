"""Figures for training runs: loss and accuracy curves, per-layer gradient norms and update ratios, one step."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from explainer.errors import InputError
from explainer.learn.sgd_step import LearningStep
from explainer.learn.training_run import TrainingRun

_SPLIT_COLORS = {"train": "#1f77b4", "test": "#ff7f0e"}
#: A widely used rule of thumb: healthy updates change a layer's weights by about 1e-3 of their size.
HEALTHY_UPDATE_RATIO = 1e-3


def _f32(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def training_curves(run: TrainingRun) -> go.Figure:
    """Loss and accuracy per epoch, training (running mean over the epoch) against test."""
    epochs = _f32([stats.epoch for stats in run.history])
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss (cross-entropy)", "Accuracy"))
    for split in ("train", "test"):
        color = _SPLIT_COLORS[split]
        loss = _f32([getattr(stats, f"{split}_loss") for stats in run.history])
        accuracy = _f32([getattr(stats, f"{split}_accuracy") for stats in run.history])
        figure.add_trace(go.Scatter(x=epochs, y=loss, mode="lines+markers", name=f"{split} loss",
                                    line={"color": color}), row=1, col=1)
        figure.add_trace(go.Scatter(x=epochs, y=accuracy, mode="lines+markers", name=f"{split} accuracy",
                                    line={"color": color, "dash": "dot" if split == "train" else "solid"}), row=1, col=2)
    target = run.config.get("target_accuracy")
    if target:
        figure.add_hline(y=target, line={"dash": "dash", "color": "gray"}, annotation_text=f"target {target:.0%}", row=1, col=2)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(tickformat=".0%", row=1, col=2)
    figure.update_layout(title=f"{run.dataset}: {run.message}", legend={"orientation": "h", "y": -0.25})
    return figure


def _layer_series(run: TrainingRun, field: str, per: str) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    if per not in ("epoch", "step"):
        raise InputError(f"per must be 'epoch' or 'step', got {per!r}.")
    rows = run.history if per == "epoch" else [step for step in run.steps if getattr(step, field)]
    if not any(getattr(row, field) for row in rows):
        raise InputError(
            f"This run has no per-layer {field} by {per}; train with telemetry='epoch' or 'step' "
            "(per='step' needs telemetry='step')."
        )
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in rows:
        for layer, value in getattr(row, field).items():
            xs, ys = series.setdefault(layer, ([], []))
            xs.append(getattr(row, per))
            ys.append(value)
    return per, {layer: (_f32(xs), _f32(ys)) for layer, (xs, ys) in series.items()}


def gradient_norms(run: TrainingRun, per: str = "epoch") -> go.Figure:
    """Each layer's gradient norm ‖∂loss/∂w‖ over training (log scale): vanishing or exploding shows here."""
    axis, series = _layer_series(run, "grad_norm", per)
    figure = go.Figure([go.Scatter(x=x, y=y, mode="lines", name=layer) for layer, (x, y) in series.items()])
    figure.update_layout(title="Gradient norm per layer", xaxis_title=axis, yaxis_title="‖gradient‖",
                         yaxis_type="log")
    return figure


def update_ratios(run: TrainingRun, per: str = "epoch") -> go.Figure:
    """Each layer's update-to-weight ratio ‖Δw‖/‖w‖ per optimizer step (log scale), with the ~1e-3 rule of thumb."""
    axis, series = _layer_series(run, "update_ratio", per)
    figure = go.Figure([go.Scatter(x=x, y=y, mode="lines", name=layer) for layer, (x, y) in series.items()])
    figure.add_hline(y=HEALTHY_UPDATE_RATIO, line={"dash": "dash", "color": "gray"}, annotation_text="≈1e-3 rule of thumb")
    figure.update_layout(title="Update / weight ratio per layer", xaxis_title=axis, yaxis_title="‖Δw‖ / ‖w‖",
                         yaxis_type="log")
    return figure


def _as_matrix(tensor: torch.Tensor) -> np.ndarray:
    values = tensor.detach().cpu().float().numpy()
    return values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(1, -1)


def learning_step_figure(step: LearningStep, parameter: str | None = None) -> go.Figure:
    """One parameter tensor through one SGD step: weights before, gradient, update (−lr·gradient), weights after.

    Tensors are shown as matrices (rows = output units; kernels flattened). ``parameter`` is a name
    such as ``"fc1.weight"``; by default the first weight matrix or kernel.
    """
    names = list(step.weights_before)
    if parameter is None:
        parameter = next((name for name in names if step.weights_before[name].ndim > 1), names[0])
    if parameter not in step.weights_before:
        raise InputError(f"Unknown parameter {parameter!r}; this step has: {', '.join(names)}.")
    panels = (
        ("weights before", step.weights_before[parameter]),
        ("gradient ∂loss/∂w", step.gradients[parameter]),
        (f"update = −{step.lr:g} × gradient", step.updates[parameter]),
        ("weights after", step.weights_after[parameter]),
    )
    figure = make_subplots(rows=1, cols=4, subplot_titles=[title for title, _ in panels], horizontal_spacing=0.06)
    weight_range = float(max(np.abs(_as_matrix(step.weights_before[parameter])).max(), 1e-12))
    for col, (title, tensor) in enumerate(panels, start=1):
        matrix = _as_matrix(tensor)
        limit = weight_range if title.startswith("weights") else float(max(np.abs(matrix).max(), 1e-12))
        figure.add_trace(
            go.Heatmap(z=matrix.astype(np.float32), zmid=0, zmin=-limit, zmax=limit, colorscale="RdBu",
                       showscale=False, name=title, hovertemplate="unit %{y}, input %{x}: %{z:.3g}<extra></extra>"),
            row=1, col=col,
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(
        title=f"One SGD step on {parameter}: loss {step.loss:.4f} ({step.loss_name}), batch of {len(step.targets)}",
    )
    return figure
