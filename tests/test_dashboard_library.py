"""What the dashboard used to compute itself, now library calls – and the dashboard's training queue."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import explainer
from explainer.attribution.sizing import params_for_size
from explainer.inside.examples import right_and_wrong
from explainer.inside.filters import first_convolution
from explainer.plots.datasets import sample_grid
from explainer.plots.filters import filters_figure

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"


@pytest.fixture(scope="module")
def digits() -> explainer.Dataset:
    return explainer.load_dataset("digits")


@pytest.fixture(scope="module")
def digits_cnn(digits: explainer.Dataset) -> explainer.Classifier:
    model = explainer.build_model("cnn", digits, seed=0, channels=(8,), hidden=(16,))
    explainer.fit(model, digits, epochs=2, device="cpu")
    return explainer.Classifier.from_module(model, labels=digits.class_names, input_size=(8, 8), in_chans=1)


def test_sample_grid_shows_every_class_of_the_dataset(digits: explainer.Dataset) -> None:
    figure = sample_grid(digits, per_class=3)
    image = figure.data[0]
    assert image.type == "image" and list(figure.layout.xaxis.ticktext) == digits.class_names
    assert image.z.shape[0] == 3 * (8 + 1) and image.z.shape[1] == 10 * (8 + 1)


def test_first_convolution_is_a_copy_of_the_first_conv_weights(digits_cnn: explainer.Classifier) -> None:
    first = first_convolution(digits_cnn)
    conv = next(m for m in digits_cnn.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert first is not None and torch.equal(first.weights, conv.weight.detach())
    first.weights.zero_()
    assert conv.weight.abs().sum() > 0  # the model's own weights untouched
    figure = filters_figure(first_convolution(digits_cnn), limit=6, cols=3)
    assert len(figure.data) == 6 and first.layer in figure.layout.title.text
    mlp = explainer.Classifier.from_module(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
                                           input_size=(8, 8), in_chans=1)
    assert first_convolution(mlp) is None


def test_right_and_wrong_agrees_with_the_predictions(digits_cnn: explainer.Classifier, digits) -> None:
    found = right_and_wrong(digits_cnn, digits, count=3)
    predicted = digits_cnn.logits(digits.x_test).argmax(dim=1)
    assert found.correct == int((predicted == digits.y_test).sum()) and found.total == len(digits.y_test)
    assert all(predicted[i] == digits.y_test[i] for i in found.right) and len(found.right) <= 3
    assert all(predicted[i] != digits.y_test[i] for i in found.wrong)


def test_params_for_size_sends_patches_larger_than_the_image_back_to_automatic() -> None:
    assert params_for_size("occlusion", {"window": 40, "stride": 8}, (32, 32))["window"] is None
    assert params_for_size("occlusion", {"window": 40, "stride": 8}, (32, 32))["stride"] == 8
    assert params_for_size("occlusion", {"window": 16, "stride": 8}, (224, 224)) == {"window": 16, "stride": 8}
    assert params_for_size("integrated_gradients", {"n_steps": 50}, (8, 8)) == {"n_steps": 50}


def test_the_training_queue_serves_first_come_first_served_and_reports_positions() -> None:
    sys.path.insert(0, str(DASHBOARDS))
    try:
        from training_queue import TrainingQueue
    finally:
        sys.path.remove(str(DASHBOARDS))
    queue = TrainingQueue(slots=1)
    order: list[str] = []
    seen: dict[str, list[int]] = {"b": [], "c": []}
    release = threading.Event()

    def first() -> None:
        with queue.slot(lambda ahead: None):
            order.append("a")
            release.wait(5)

    def later(name: str) -> None:
        with queue.slot(seen[name].append):
            order.append(name)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    time.sleep(0.2)
    for name in ("b", "c"):
        threads.append(threading.Thread(target=later, args=(name,)))
        threads[-1].start()
        time.sleep(0.2)
    time.sleep(0.6)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c"]
    assert seen["b"][0] == 1 and seen["c"][0] == 2  # runs ahead: the running one (+ b for c)
