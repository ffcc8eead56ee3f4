"""The mechanism figures draw the library's numbers: patching bars and maps, concept rows, TCAV beside its null."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

import explainer
from explainer.plots.mechanisms import concepts_figure, patch_figure, patch_pairs_figure, tcav_figure


@pytest.fixture(scope="module")
def pairs(known_answer_cnn):
    classifier, data = known_answer_cnn
    images = data.x_test[:6]
    return classifier, images, explainer.corrupt(classifier, images, "blur")


def test_patch_bars_carry_the_means_and_their_intervals(pairs):
    classifier, images, bad = pairs
    result = explainer.patch(classifier, images, bad, layers="1", granularity="channel", progress=False)
    fig = patch_figure(result)
    bar = fig.data[0]
    assert isinstance(bar, go.Bar) and list(bar.x) == result.sites
    np.testing.assert_allclose(np.asarray(bar.y, dtype=float), result.means, rtol=1e-6, equal_nan=True)
    upper = np.nan_to_num([i.high - i.mean for i in result.intervals])
    assert upper.any() and bar.error_y.array is not None
    np.testing.assert_allclose(np.asarray(bar.error_y.array, dtype=float), upper, rtol=1e-5, atol=1e-6)
    assert "6 pairs" in fig.layout.title.text
    heat = patch_pairs_figure(result).data[0]
    assert np.asarray(heat.z).shape == (6, len(result.sites))

    one = explainer.patch(classifier, images[:1], bad[:1], layers="1", progress=False)
    assert "no interval" in patch_figure(one).layout.title.text and not patch_figure(one).data[0].error_y.array


def test_position_patching_is_drawn_on_the_layer_grid(pairs):
    classifier, images, bad = pairs
    result = explainer.patch(classifier, images[:2], bad[:2], layers="3", granularity="position", progress=False)
    heat = patch_figure(result).data[0]
    assert isinstance(heat, go.Heatmap)
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), result.site_map(), rtol=1e-6, equal_nan=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_concept_rows_are_ordered_by_importance_with_their_crops(known_answer_cnn):
    classifier, data = known_answer_cnn
    result = explainer.concepts(classifier, data.x_test[:8], layer="3", n_concepts=3)
    fig = concepts_figure(result, crops_per_concept=2)
    bars = [trace for trace in fig.data if isinstance(trace, go.Bar)]
    images = [trace for trace in fig.data if isinstance(trace, go.Image)]
    means = [i.mean for i in result.importance]
    assert [float(bar.x[0]) for bar in bars] == pytest.approx(sorted(means, reverse=True), rel=1e-6)
    assert len(images) == 3 * 2


def test_tcav_figure_shows_the_null_and_marks_significance(known_answer_cnn):
    classifier, data = known_answer_cnn
    x, y = data.x_train, data.y_train
    result = explainer.tcav(classifier, x[y == 0][:20], x[200:400], layers=["1", "4"], target=0,
                            inputs=data.x_test[data.y_test == 0], permutations=40, progress=False)
    fig = tcav_figure(result)
    boxes = [trace for trace in fig.data if isinstance(trace, go.Box)]
    assert [list(box.y) for box in boxes] == [pytest.approx(row.null_scores, abs=1e-6) for row in result.layers]
    scatter = fig.data[-1]
    assert list(scatter.y) == pytest.approx([row.score.mean for row in result.layers], abs=1e-6)
    colours = list(scatter.marker.color)
    assert colours == ["#e45756" if row.significant else "#8c8c8c" for row in result.layers]
    assert "40 random subsets" in fig.layout.title.text and boxes[0].name == "random subsets (mean score)"
