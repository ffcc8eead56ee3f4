"""Transfer-learning figures: accuracy against labelled examples per class."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb, qualitative

from explainer.transfer.results import TransferResults


def transfer_curve(results: TransferResults, title: str | None = None) -> go.Figure:
    """Test accuracy vs labelled examples per class (log x): one line per strategy, its interval band, chance.

    The band spans the 95 % bootstrap interval of the mean across seeds (none with one seed).
    """
    summary = results.summary()
    figure = go.Figure()
    palette = qualitative.Plotly
    for i, strategy in enumerate(results.strategies):
        part = summary[summary["strategy"] == strategy]
        if part.empty:
            continue
        shots = part["shots"].to_numpy(np.float32)
        mean = (100 * part["mean"]).to_numpy(np.float32)
        low = (100 * part["ci_low"]).to_numpy(np.float32)
        high = (100 * part["ci_high"]).to_numpy(np.float32)
        red, green, blue = hex_to_rgb(palette[i % len(palette)])
        if np.isfinite(low).all():
            figure.add_trace(go.Scatter(
                x=np.concatenate([shots, shots[::-1]]), y=np.concatenate([high, low[::-1]]),
                mode="lines", fill="toself", fillcolor=f"rgba({red},{green},{blue},0.18)", line={"width": 0},
                hoverinfo="skip", showlegend=False, legendgroup=strategy, name=f"{strategy} 95 % interval",
            ))
        figure.add_trace(go.Scatter(
            x=shots, y=mean, customdata=np.stack([low, high], axis=1), mode="lines+markers", name=strategy,
            legendgroup=strategy, line={"color": f"rgb({red},{green},{blue})", "width": 2},
            hovertemplate=(f"{strategy}<br>%{{x:.0f}} per class: %{{y:.1f}}% "
                           "(95 % CI %{customdata[0]:.1f}–%{customdata[1]:.1f})<extra></extra>"),
        ))
    figure.add_hline(
        y=float(np.float32(100 * results.chance)), line={"dash": "dot", "color": "gray"},
        annotation_text="chance", annotation_position="bottom right",
    )
    seeds = int(results.table["seed"].nunique())
    levels = sorted(int(k) for k in summary["shots"].unique())
    figure.update_layout(
        title=title or (
            f"{results.dataset}: pretrained {results.model_name} ({results.config['image_size']} px) vs from scratch, "
            f"{seeds} seed{'s' if seeds != 1 else ''}" + ("" if seeds > 1 else " (no interval: add seeds)")
        ),
        xaxis={"type": "log", "title": "labelled examples per class", "tickvals": levels},
        yaxis={"title": "test accuracy (%)", "range": [0, 101]},
        legend={"title": "strategy"},
        template="plotly_white",
    )
    return figure
