"""Figures for the playground: decision boundary with points, every neuron as a heatmap, loss curves, the network."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.errors import InputError
from explainer.learn.playground import PlaygroundFrame, PlaygroundRun

#: TensorFlow Playground's colours: orange for negative values / the orange class, blue for positive / blue.
ORANGE, BLUE, NEUTRAL = "#f59322", "#0877bd", "#e8eaeb"
COLORSCALE = [[0.0, ORANGE], [0.5, NEUTRAL], [1.0, BLUE]]
WIDTH_BINS = 6


def _symmetric_limit(values: np.ndarray) -> float:
    return float(max(np.abs(values).max(), 1e-6))


def decision_boundary(run: PlaygroundRun, epoch: int | None = None, show_test: bool = True) -> go.Figure:
    """The network's output over the plane (blue positive, orange negative) with the data points.

    Training points are filled; test points (``show_test``) have a white rim. ``epoch`` picks one
    of ``run.snapshots`` instead of the final network.
    """
    if epoch is None:
        grid, when = run.output, f"after {run.training.epochs} epochs"
    elif epoch in run.snapshots:
        grid, when = run.snapshots[epoch], f"after epoch {epoch}"
    else:
        raise InputError(f"No snapshot for epoch {epoch}; snapshots exist for epochs {sorted(run.snapshots)}.")
    history = run.training.history[-1]
    title = f"{run.config.dataset} {when}: test loss {history.test_loss:.3f}, test accuracy {history.test_accuracy:.1%}"
    return _boundary(run, grid, title, show_test)


def frame_boundary(frame: PlaygroundFrame, show_test: bool = True) -> go.Figure:
    """:func:`decision_boundary` for a network still training (``train_playground(on_frame=...)``)."""
    when = "untrained (initial weights)" if frame.epoch == 0 else f"training, epoch {frame.epoch}"
    loss = f": test loss {frame.test_loss[-1]:.3f}" if frame.test_loss else ""
    return _boundary(frame, frame.output, f"{frame.config.dataset}, {when}{loss}", show_test)


def _boundary(run: PlaygroundRun | PlaygroundFrame, grid: np.ndarray, title: str, show_test: bool) -> go.Figure:
    figure = go.Figure(go.Heatmap(
        x=run.grid, y=run.grid, z=grid.astype(np.float32), zmin=-1, zmax=1, colorscale=COLORSCALE, opacity=0.8,
        colorbar={"title": "output", "tickvals": [-1, 0, 1]},
        hovertemplate="x1 %{x:.2f}, x2 %{y:.2f}: %{z:.2f}<extra></extra>",
    ))
    splits = [("train", run.x_train, run.y_train, NEUTRAL)] + ([("test", run.x_test, run.y_test, "white")] if show_test else [])
    for split, points, labels, rim in splits:
        for label, color in ((0, BLUE), (1, ORANGE)):
            chosen = points[labels == label].astype(np.float32)
            figure.add_trace(go.Scatter(
                x=chosen[:, 0], y=chosen[:, 1], mode="markers", name=f"{split}: {'blue' if label == 0 else 'orange'}",
                marker={"color": color, "size": 6, "line": {"color": rim, "width": 1.5 if split == "test" else 0.5}},
            ))
    figure.update_layout(
        title=title,
        xaxis={"title": "x1", "range": [run.grid[0], run.grid[-1]], "constrain": "domain"},
        yaxis={"title": "x2", "range": [run.grid[0], run.grid[-1]], "scaleanchor": "x"},
        legend={"orientation": "h", "y": -0.15},
    )
    return figure


def frame_losses(frame: PlaygroundFrame) -> go.Figure:
    """:func:`loss_curves` for a network still training: the epochs finished so far."""
    epochs = np.arange(1, len(frame.train_loss) + 1, dtype=np.float32)
    figure = go.Figure([
        go.Scatter(x=epochs, y=np.asarray(frame.train_loss, dtype=np.float32), mode="lines", name="training loss",
                   line={"color": "#555555"}),
        go.Scatter(x=epochs, y=np.asarray(frame.test_loss, dtype=np.float32), mode="lines", name="test loss",
                   line={"color": "#000000", "dash": "dot"}),
    ])
    figure.update_layout(title=f"Loss while training: epoch {frame.epoch} of {frame.config.epochs}",
                         xaxis_title="epoch", yaxis_title="cross-entropy", yaxis_rangemode="tozero",
                         xaxis_range=[0, frame.config.epochs])
    return figure


def loss_curves(run: PlaygroundRun) -> go.Figure:
    """Training and test loss per epoch, as in the Playground's top-right chart."""
    epochs = np.arange(1, run.training.epochs + 1, dtype=np.float32)
    figure = go.Figure([
        go.Scatter(x=epochs, y=np.asarray(run.train_loss, dtype=np.float32), mode="lines", name="training loss",
                   line={"color": "#555555"}),
        go.Scatter(x=epochs, y=np.asarray(run.test_loss, dtype=np.float32), mode="lines", name="test loss",
                   line={"color": "#000000", "dash": "dot"}),
    ])
    figure.update_layout(title=f"Loss: {run.training.message}", xaxis_title="epoch", yaxis_title="cross-entropy",
                         yaxis_rangemode="tozero")
    return figure


def _columns(run: PlaygroundRun) -> list[tuple[str, np.ndarray]]:
    """(title, maps (n, G, G)) for the input features, each hidden layer and the output."""
    columns = [("features", np.stack(list(run.feature_maps.values())))]
    columns += [(f"layer {index}", maps) for index, maps in enumerate(run.neuron_maps, start=1)]
    return columns + [("output", run.output[None])]


def neuron_heatmaps(run: PlaygroundRun) -> go.Figure:
    """What every neuron computes: its output over the input plane, one column per layer (features first)."""
    columns = _columns(run)
    rows = max(maps.shape[0] for _, maps in columns)
    titles = [""] * (rows * len(columns))
    names = list(run.feature_maps)
    for col, (title, maps) in enumerate(columns):
        for row in range(maps.shape[0]):
            label = names[row] if col == 0 else (title if title == "output" else f"{title}, neuron {row + 1}")
            titles[row * len(columns) + col] = label
    figure = make_subplots(rows=rows, cols=len(columns), subplot_titles=titles,
                           horizontal_spacing=0.02, vertical_spacing=0.04)
    for col, (title, maps) in enumerate(columns, start=1):
        for row, values in enumerate(maps, start=1):
            limit = 1.0 if title != "features" else _symmetric_limit(values)
            figure.add_trace(go.Heatmap(
                x=run.grid, y=run.grid, z=values.astype(np.float32), zmid=0, zmin=-limit, zmax=limit,
                colorscale=COLORSCALE, showscale=False, hovertemplate="%{z:.2f}<extra></extra>",
            ), row=row, col=col)
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    figure.update_annotations(font_size=10)
    figure.update_layout(title="Each neuron's output over the plane (blue > 0 > orange)",
                         height=max(300, 110 * rows), width=max(400, 130 * len(columns)))
    return figure


def network_diagram(run: PlaygroundRun) -> go.Figure:
    """The network as TensorFlow Playground draws it: link thickness = |weight|, colour = sign (blue +, orange −).

    The two class logits are drawn as one output neuron whose weights are blue minus orange.
    """
    sizes = [len(run.feature_maps)] + [maps.shape[0] for maps in run.neuron_maps] + [1]
    positions = [
        [(float(layer), (count - 1) / 2.0 - index) for index in range(count)] for layer, count in enumerate(sizes)
    ]
    largest = max(_symmetric_limit(weight) for weight, _ in run.weights)
    bins: dict[tuple[int, bool], tuple[list, list]] = {}
    for layer, (weight, _) in enumerate(run.weights):
        for target, row in enumerate(weight):
            for source, value in enumerate(row):
                width_bin = min(WIDTH_BINS - 1, int(abs(value) / largest * WIDTH_BINS))
                xs, ys = bins.setdefault((width_bin, value >= 0), ([], []))
                (x0, y0), (x1, y1) = positions[layer][source], positions[layer + 1][target]
                xs += [x0, x1, np.nan]
                ys += [y0, y1, np.nan]
    figure = go.Figure()
    for (width_bin, positive), (xs, ys) in sorted(bins.items()):
        figure.add_trace(go.Scatter(
            x=np.asarray(xs, dtype=np.float32), y=np.asarray(ys, dtype=np.float32), mode="lines",
            hoverinfo="skip", showlegend=False, connectgaps=False,
            line={"color": BLUE if positive else ORANGE, "width": 0.5 + 1.5 * width_bin},
        ))
    labels = list(run.feature_maps) + [f"L{layer} n{i + 1}" for layer, maps in enumerate(run.neuron_maps, start=1)
                                       for i in range(maps.shape[0])] + ["output"]
    biases = [0.0] * sizes[0] + [float(b) for _, bias in run.weights for b in bias]
    nodes = np.asarray([point for layer in positions for point in layer], dtype=np.float32)
    figure.add_trace(go.Scatter(
        x=nodes[:, 0], y=nodes[:, 1], mode="markers+text", text=labels, textposition="top center", showlegend=False,
        marker={"size": 22, "color": np.asarray(biases, dtype=np.float32), "colorscale": COLORSCALE, "cmid": 0,
                "line": {"color": "#333333", "width": 1}},
        hovertemplate="%{text}<br>bias %{marker.color:.3f}<extra></extra>",
    ))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=f"{run.config.activation} network {'-'.join(map(str, run.config.hidden)) or 'linear'}: "
                               "link width = |weight|, blue positive, orange negative; node colour = bias",
                         plot_bgcolor="white")
    return figure
