"""estimate_cost: evaluation counts match what explain() really runs; clear errors; a readable line."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import explainer
from explainer.attribution.estimate import CostEstimate, check_budget, estimate_cost
from explainer.attribution.registry import get_method


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


def test_estimate_uses_the_declared_cost_of_every_method(tiny) -> None:
    image = torch.rand(1, 3, 28, 28)
    for name in explainer.list_methods():
        spec = get_method(name)
        cost = estimate_cost(tiny, image, name)
        assert cost.evaluations == max(1, int(spec.cost(spec.resolve({}), (28, 28))))
        assert cost.pass_kind == ("forward" if spec.forward_only else "forward+backward")


@pytest.mark.parametrize("n_steps", [10**6, 10**7])
def test_unbounded_work_is_refused_before_it_starts(bundled_classifier, photos, n_steps) -> None:
    """Issue 14: IG with n_steps=20000 ran past 120 s; a million steps take hours on any CPU and are refused at once."""
    estimate_cost(bundled_classifier, photos["cat"], "saliency")  # the timed pass, once per session
    started = time.perf_counter()
    with pytest.raises(explainer.InputError, match=r"over the time budget of 10\.0 min.*n_steps=50 \(the default\)"):
        explainer.explain(bundled_classifier, photos["cat"], "integrated_gradients", n_steps=n_steps)
    with pytest.raises(explainer.InputError, match="budget_seconds=None"):
        check_budget(bundled_classifier, photos["cat"], "integrated_gradients", {"n_steps": n_steps})
    assert time.perf_counter() - started < 10


def test_budget_none_or_raised_lets_the_call_run(tiny) -> None:
    image = torch.rand(1, 3, 28, 28)
    cost = estimate_cost(tiny, image, "integrated_gradients", n_steps=400)
    assert check_budget(tiny, image, "integrated_gradients", {"n_steps": 400}, budget_seconds=None) is None
    assert check_budget(tiny, image, "integrated_gradients", {"n_steps": 400}, budget_seconds=3600) == cost
    with pytest.raises(explainer.InputError, match="over the time budget"):
        check_budget(tiny, image, "integrated_gradients", {"n_steps": 400}, budget_seconds=cost.seconds / 10)
    explanation = explainer.explain(tiny, image, "integrated_gradients", n_steps=400, budget_seconds=None)
    assert explanation.params["n_steps"] == 400
