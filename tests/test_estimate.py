"""estimate_cost: evaluation counts match what explain() really runs; clear errors; a readable line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import explainer
from explainer.explain.estimate import CostEstimate, estimate_cost


@pytest.fixture(scope="module")
def tiny() -> explainer.Classifier:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return explainer.Classifier.from_module(module, input_size=28)


def counted_evaluations(classifier: explainer.Classifier, images: torch.Tensor, method: str, **params) -> int:
    """Samples that went through the model during one explain() call (after a warm-up call)."""
    explainer.explain(classifier, images, method=method, target=0, **params)  # probes memory once
    seen: list[int] = []
    handle = classifier.module.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    try:
        explainer.explain(classifier, images, method=method, target=0, **params)
    finally:
        handle.remove()
    return sum(seen)


@pytest.mark.parametrize(("method", "params"), [
    ("saliency", {}),
    ("integrated_gradients", {"n_steps": 12}),
    ("smoothgrad", {"n_samples": 6}),
    ("gradient_shap", {"n_samples": 5}),
    ("gradcam", {}),
    ("occlusion", {"window": 8, "stride": 4}),
    ("occlusion", {}),
])
def test_evaluations_match_what_explain_runs(tiny, method: str, params: dict) -> None:
    images = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    cost = estimate_cost(tiny, images, method, **params)
    assert cost.evaluations * cost.images == counted_evaluations(tiny, images, method, **params)
    assert cost.seconds == pytest.approx(cost.seconds_per_evaluation * cost.evaluations * 2)
    assert cost.seconds_per_evaluation > 0
    assert cost.pass_kind == ("forward" if method == "occlusion" else "forward+backward")


def test_estimate_is_in_the_right_range_and_readable(tiny) -> None:
    image = torch.rand(1, 3, 28, 28)
    cost = estimate_cost(tiny, image, "integrated_gradients", n_steps=64)
    assert isinstance(cost, CostEstimate) and cost.evaluations == 66
    explanation = explainer.explain(tiny, image, method="integrated_gradients", n_steps=64)
    assert cost.seconds < 20 * explanation.seconds + 0.05  # same order of magnitude, not a wild guess
    assert cost.text().startswith("≈ ") and "66 forward+backward pass(es) per image" in cost.text()


def test_estimate_rejects_what_explain_rejects(tiny) -> None:
    with pytest.raises(explainer.InputError, match="Unknown attribution method"):
        estimate_cost(tiny, torch.rand(1, 3, 28, 28), "magic")
    with pytest.raises(explainer.InputError, match="n_steps"):
        estimate_cost(tiny, torch.rand(1, 3, 28, 28), "integrated_gradients", n_steps=0)
