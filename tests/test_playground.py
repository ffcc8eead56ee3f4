"""The TensorFlow-Playground backend: what small networks can and cannot learn, and what every neuron does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explainer.errors import InputError
from explainer.learn.playground import PlaygroundConfig, feature_matrix, train_playground
from explainer.plots.playground import (
    BLUE,
    ORANGE,
    WIDTH_BINS,
    decision_boundary,
    loss_curves,
    network_diagram,
    neuron_heatmaps,
)

#: The spiral setting the docs quote: 2×8 tanh on x1, x2 and their sines, noise 0, Adam, full batch.
SPIRAL = PlaygroundConfig(
    dataset="spiral", features=("x1", "x2", "sin(x1)", "sin(x2)"), hidden=(8, 8), activation="tanh",
    optimizer="adam", lr=0.01, batch_size=200, epochs=1000,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def xor_runs() -> dict:
    torch.set_num_threads(1)
    return {
        activation: train_playground(PlaygroundConfig(dataset="xor", activation=activation, optimizer="adam", epochs=50))
        for activation in ("linear", "tanh", "relu")
    }


def test_spiral_is_learned_by_a_2x8_tanh_network():
    run = train_playground(SPIRAL)
    assert run.test_accuracy >= 0.95
    assert run.training.status == "completed" and run.training.epochs == 1000
    assert run.training.parameters == (4 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    assert run.test_loss[-1] < run.test_loss[0] / 5


def test_linear_network_cannot_learn_xor_but_tanh_and_relu_can(xor_runs):
    assert xor_runs["linear"].test_accuracy < 0.7  # no hidden non-linearity: a straight boundary
    assert xor_runs["tanh"].test_accuracy >= 0.9
    assert xor_runs["relu"].test_accuracy >= 0.9


def test_grids_neurons_and_weights_describe_the_trained_network(xor_runs):
    run = xor_runs["tanh"]
    size = run.config.grid_size
    assert run.output.shape == (size, size) and run.output.dtype == np.float32
    assert np.all(np.abs(run.output) <= 1)
    assert [maps.shape for maps in run.neuron_maps] == [(4, size, size), (2, size, size)]
    assert np.all(np.abs(run.neuron_maps[0]) <= 1)  # tanh outputs
    assert list(run.feature_maps) == ["x1", "x2"]
    np.testing.assert_allclose(run.feature_maps["x1"][0], run.grid, rtol=1e-6)  # columns run along x1
    # Recompute the output from the returned weights alone: the single output neuron is exact.
    x1, x2 = np.meshgrid(run.grid, run.grid)
    values = np.stack([x1.ravel(), x2.ravel()], axis=1)
    for weight, bias in run.weights[:-1]:
        values = np.tanh(values @ weight.T + bias)
    np.testing.assert_allclose(values.T.reshape(run.neuron_maps[-1].shape), run.neuron_maps[-1], atol=1e-5)
    weight, bias = run.weights[-1]
    logit_gap = values @ weight.T + bias
    np.testing.assert_allclose(np.tanh(logit_gap / 2).reshape(size, size), run.output, atol=1e-5)
    # The output's sign at the test points gives the reported test accuracy.
    cells = lambda v: np.abs(run.grid[None, :] - v[:, None]).argmin(axis=1)  # noqa: E731
    inside = np.all(np.abs(run.x_test) <= run.grid[-1], axis=1)
    predicted = (run.output[cells(run.x_test[inside, 1]), cells(run.x_test[inside, 0])] < 0).astype(int)
    assert np.mean(predicted == run.y_test[inside]) == pytest.approx(run.test_accuracy, abs=0.05)
    assert sorted(run.snapshots)[:2] == [1, 5] and run.snapshots[50].shape == (size, size)


def test_features_are_computed_as_named():
    points = torch.tensor([[1.0, 2.0], [-0.5, 3.0]])
    features = feature_matrix(points, ("x1^2", "x1*x2", "sin(x2)"))
    expected = torch.tensor([[1.0, 2.0, np.sin(2.0)], [0.25, -1.5, np.sin(3.0)]], dtype=torch.float32)
    torch.testing.assert_close(features, expected)


def test_playground_leaves_the_global_rng_alone_and_repeats_itself():
    """The network is seeded from config.seed without reseeding the caller's global RNG (it used to call
    torch.manual_seed), and the same config gives the same run."""
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    config = PlaygroundConfig(dataset="xor", epochs=3, seed=5)
    first, second = train_playground(config), train_playground(config)
    assert torch.equal(torch.rand(3), expected)
    np.testing.assert_array_equal(first.output, second.output)
    assert [w.tolist() for w, _ in first.weights] == [w.tolist() for w, _ in second.weights]


def test_playground_results_speak_the_shared_vocabulary():
    run = train_playground(PlaygroundConfig(dataset="xor", epochs=2, hidden=(3,)), device=None)
    summary = run.summary()
    assert len(summary) == 1 and summary.loc[0, "epochs"] == 2
    assert run.model_name == "mlp 2-3-2 tanh" and summary.loc[0, "model_name"] == run.model_name
    assert run.device == ("cuda" if torch.cuda.is_available() else "cpu")
    data = run.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False))["test_accuracy"] == pytest.approx(run.test_accuracy)
    assert data["config"]["hidden"] == [3] and len(data["training"]["history"]) == 2
    assert data["seconds"] == pytest.approx(run.seconds) and data["device"] == run.device
    with pytest.warns(DeprecationWarning, match="callback=... by keyword"):
        old = train_playground(PlaygroundConfig(dataset="xor", epochs=3), lambda stats: stats.epoch < 1)
    assert old.training.status == "stopped"


def test_callback_can_stop_a_playground_run():
    run = train_playground(PlaygroundConfig(epochs=30), callback=lambda stats: stats.epoch < 3)
    assert run.training.status == "stopped" and len(run.train_loss) == 3


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dataset": "digits"}, "Unknown playground dataset 'digits'"),
        ({"features": ("x1", "x3")}, "features must be distinct names from: x1, x2"),
        ({"features": ()}, "features must be distinct names"),
        ({"hidden": (4, 9)}, "0–6 layers of 1–8 neurons"),
        ({"hidden": (2,) * 7}, "0–6 layers of 1–8 neurons"),
        ({"activation": "swish"}, "Unknown activation 'swish'"),
        ({"noise": 0.7}, "noise must be between 0 and 0.5"),
        ({"train_fraction": 1.0}, "train_fraction must be between 0 and 1"),
        ({"optimizer": "lbfgs"}, "Unknown optimizer 'lbfgs'"),
    ],
)
def test_bad_settings_name_the_problem(options, message):
    with pytest.raises(InputError, match=message):
        PlaygroundConfig(**options)


def test_playground_figures(xor_runs):
    run = xor_runs["tanh"]
    boundary = decision_boundary(run)
    assert boundary.data[0].z.dtype == np.float32 and boundary.data[0].z.shape == run.output.shape
    assert sum(len(trace.x) for trace in boundary.data[1:]) == len(run.x_train) + len(run.x_test)
    assert np.array_equal(decision_boundary(run, epoch=5).data[0].z, run.snapshots[5])
    with pytest.raises(InputError, match="No snapshot for epoch 7"):
        decision_boundary(run, epoch=7)
    heatmaps = neuron_heatmaps(run)
    assert len(heatmaps.data) == 2 + 4 + 2 + 1  # features, layer 1, layer 2, output
    assert len(loss_curves(run).data[0].y) == run.training.epochs
    diagram = network_diagram(run)
    links = [trace for trace in diagram.data if trace.mode == "lines"]
    assert sum(np.isnan(trace.x).sum() for trace in links) == 2 * 4 + 4 * 2 + 2 * 1  # one gap per link
    widest = max(links, key=lambda trace: trace.line.width)
    strongest = max((value for weight, _ in run.weights for value in weight.ravel()), key=abs)
    assert widest.line.width == 0.5 + 1.5 * (WIDTH_BINS - 1)
    assert widest.line.color == (BLUE if strongest > 0 else ORANGE)
