"""Figures the browser draws fast: the same pixels as PNG, heatmaps composited into their image."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

import explainer
from explainer.plots.attribution import attribution_overlay, methods_grid
from explainer.plots.compact import _decode, compact_images, compact_overlays

SCALE = [[0.0, "rgba(0,0,255,0.5)"], [0.5, "rgba(255,255,255,0)"], [1.0, "rgba(255,0,0,1.0)"]]


def _photo(height: int = 6, width: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_images_become_png_with_the_same_pixels():
    pixels = _photo()
    figure = compact_images(go.Figure(go.Image(z=pixels)))
    assert figure.data[0].z is None and figure.data[0].source.startswith("data:image/png;base64,")
    assert np.array_equal(_decode(figure.data[0].source), pixels)
    floats = go.Figure(go.Image(z=pixels.astype(float) * 2))  # outside 0–255: not a uint8 picture, left alone
    assert compact_images(floats).data[0].source is None


def test_a_heatmap_is_blended_into_the_image_under_it_with_its_colour_scale_and_opacity():
    pixels = _photo()
    values = np.zeros((6, 8))
    values[0, 0], values[0, 1], values[0, 2] = 1.0, -1.0, 0.0
    figure = go.Figure([go.Image(z=pixels),
                        go.Heatmap(z=values, zmin=-1, zmax=1, colorscale=SCALE, opacity=0.8, showscale=False)])
    composite = _decode(compact_overlays(figure).data[0].source).astype(float)
    assert [trace.type for trace in figure.data] == ["image"]
    red = 0.8 * np.array([255, 0, 0]) + 0.2 * pixels[0, 0]  # alpha 1.0 × opacity 0.8
    blue = 0.4 * np.array([0, 0, 255]) + 0.6 * pixels[0, 1]  # alpha 0.5 × 0.8
    assert np.abs(composite[0, 0] - red).max() <= 1 and np.abs(composite[0, 1] - blue).max() <= 1
    assert np.array_equal(composite[0, 2], pixels[0, 2])  # zero is transparent: the photo shows through
    assert np.array_equal(composite[3:], pixels[3:])


def test_what_is_not_an_overlay_stays_and_a_colour_bar_survives():
    pixels = _photo()
    alone = make_subplots(rows=1, cols=2)
    alone.add_trace(go.Image(z=pixels), row=1, col=1)
    alone.add_trace(go.Heatmap(z=np.ones((6, 8)), colorscale=SCALE), row=1, col=2)  # no image under it
    alone.add_trace(go.Heatmap(z=np.ones((3, 3)), colorscale=SCALE), row=1, col=1)  # not the image's grid
    assert [trace.type for trace in compact_overlays(alone).data] == ["image", "heatmap", "heatmap"]
    barred = go.Figure([go.Image(z=pixels), go.Heatmap(z=np.zeros((6, 8)), zmin=0, zmax=1, colorscale=SCALE,
                                                       showscale=True, colorbar={"title": {"text": "score"}})])
    compact_overlays(barred)
    bar = barred.data[-1]
    assert bar.type == "scatter" and bar.marker.showscale and bar.marker.colorbar.title.text == "score"
    assert (bar.marker.cmin, bar.marker.cmax) == (0, 1)


@pytest.fixture(scope="module")
def explanations(bundled_classifier, photos):
    return [explainer.explain(bundled_classifier, photos["cat"], method=m) for m in ("gradcam", "saliency")]


def test_the_methods_grid_of_the_bundled_model_is_three_images_and_a_third_of_the_bytes(explanations):
    grid = methods_grid(explanations)
    before = len(compact_images(methods_grid(explanations)).to_json())
    compact_overlays(grid)
    assert [(trace.type, trace.name) for trace in grid.data] == [("image", "image"), ("image", "gradcam"),
                                                                  ("image", "saliency")]
    assert len(grid.to_json()) < before / 2
    photo = _decode(grid.data[0].source)
    assert not np.array_equal(_decode(grid.data[1].source), photo)  # the map is drawn in
    overlay = compact_overlays(attribution_overlay(explanations[0]))
    assert [trace.type for trace in overlay.data] == ["image", "scatter"]
