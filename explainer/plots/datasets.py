"""Figures of a dataset itself: a few training images of each class."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from explainer.data.datasets import Dataset


def _gray_or_rgb(pixels: torch.Tensor) -> np.ndarray:
    """(C, H, W) pixels in [0, 1] → (H, W, 3) uint8 for an image trace."""
    array = pixels.detach().cpu().float().clamp(0, 1).numpy()
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return (array[:3].transpose(1, 2, 0) * 255).round().astype(np.uint8)


def sample_grid(data: Dataset, per_class: int = 2) -> go.Figure:
    """A few training images of each class in one picture (a column per class, labelled below)."""
    columns = []
    for c in range(data.num_classes):
        picks = torch.nonzero(data.y_train == c).flatten()[:per_class].tolist()
        columns.append([_gray_or_rgb(data.x_train[int(i)]) for i in picks])
    height, width = columns[0][0].shape[:2]
    gap = max(1, width // 8)
    mosaic = np.full((per_class * (height + gap), data.num_classes * (width + gap), 3), 255, dtype=np.uint8)
    for col, images in enumerate(columns):
        for row, image in enumerate(images):
            top, left = row * (height + gap), col * (width + gap)
            mosaic[top:top + height, left:left + width] = image
    figure = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    figure.update_xaxes(tickvals=[c * (width + gap) + width / 2 for c in range(data.num_classes)],
                        ticktext=data.class_names, side="bottom", showgrid=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=f"{data.name}: training images ({len(data.y_train):,} in all), a column per class",
                         height=min(420, 120 + 90 * per_class), margin={"t": 60, "l": 10, "r": 10, "b": 40})
    return figure
