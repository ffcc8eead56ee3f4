"""The first convolution's learned filters as a grid of heatmaps."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explainer.inside.filters import FirstConvolution


def filters_figure(first: FirstConvolution, limit: int = 32, cols: int = 8) -> go.Figure:
    """Up to ``limit`` kernels of ``first`` (mean over input channels), one shared blue–red scale."""
    weights = first.weights[:limit]
    rows = -(-len(weights) // cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[f"filter {i}" for i in range(len(weights))],
                           horizontal_spacing=0.015, vertical_spacing=0.08)
    limit_value = float(weights.abs().max()) or 1.0
    for i, kernel in enumerate(weights):
        figure.add_trace(go.Heatmap(z=kernel.mean(0).numpy().astype(np.float32), coloraxis="coloraxis",
                                    hovertemplate="%{z:.3f}<extra></extra>"), row=i // cols + 1, col=i % cols + 1)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed")
    figure.update_annotations(font_size=10)
    kh, kw = first.kernel_size
    figure.update_layout(
        title=f"{first.layer}: {first.out_channels} learned {kh}×{kw} filters "
              f"(mean over {first.in_channels} input channel(s); blue < 0 < red)",
        coloraxis={"colorscale": "RdBu_r", "cmin": -limit_value, "cmax": limit_value},
        height=110 * rows + 80, margin={"t": 70, "l": 10, "r": 10, "b": 10},
    )
    return figure
