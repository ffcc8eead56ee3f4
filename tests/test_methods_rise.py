"""RISE: the batched, memory-bounded runner equals a plain loop over the paper's estimator."""

from __future__ import annotations

import pytest
import torch

import explainer
from explainer.attribution.methods.rise import rise_masks


@pytest.fixture(scope="module")
def tiny() -> explainer.Classifier:
    torch.manual_seed(0)
    model = explainer.build_cnn((3, 16, 16), 5, channels=(4,), hidden=8)
    return explainer.Classifier.from_module(model, input_size=16, name="tiny")


def plain_rise(model: torch.nn.Module, image: torch.Tensor, target: int, masks: torch.Tensor, p: float) -> torch.Tensor:
    """S = 1/(N·p) Σ_i P(target | I ⊙ M_i) · M_i, one mask at a time (Petsiuk et al. 2018, eq. 6)."""
    total = torch.zeros(image.shape[-2:])
    with torch.no_grad():
        for mask in masks:
            probability = model((image * mask).unsqueeze(0)).softmax(1)[0, target]
            total += probability * mask[0]
    return total / (len(masks) * p)


def test_rise_equals_the_papers_estimator(tiny, one_torch_thread):
    pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    explanation = explainer.explain(tiny, pixels, "rise", target=[0, 3, 4], n_masks=40, cell_size=4,
                                    probability=0.3, seed=7, internal_batch_size=7)
    masks = rise_masks(40, (16, 16), cell_size=4, probability=0.3, seed=7).build(0, 40)
    for i, target in enumerate([0, 3, 4]):
        expected = plain_rise(tiny.module, tiny.normalize(pixels)[i], target, masks, 0.3)
        torch.testing.assert_close(explanation.attributions[i, 0], expected, atol=1e-5, rtol=1e-4)


def test_rise_masks_follow_the_construction():
    masks = rise_masks(400, (20, 30), cell_size=5, probability=0.25, seed=0)
    full = masks.build(0, 400)
    assert full.shape == (400, 1, 20, 30)
    assert float(full.min()) >= 0.0 and float(full.max()) <= 1.0
    assert abs(float(full.mean()) - 0.25) < 0.03
    assert masks.grids.shape[-2:] == (4, 6) and int(masks.shifts.max()) < 5
    torch.testing.assert_close(masks.build(10, 20), full[10:20])  # chunks are slices of one set


def test_rise_is_seeded_independent_of_batching_and_leaves_the_global_rng(tiny, one_torch_thread):
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    state = torch.get_rng_state()
    a = explainer.explain(tiny, pixels, "rise", n_masks=30, seed=1, internal_batch_size=2).attributions
    b = explainer.explain(tiny, pixels, "rise", n_masks=30, seed=1, internal_batch_size=60).attributions
    c = explainer.explain(tiny, pixels, "rise", n_masks=30, seed=2).attributions
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(a, c)


def test_rise_parameters_are_validated(tiny):
    with pytest.raises(explainer.InputError, match="probability"):
        explainer.explain(tiny, torch.rand(1, 3, 16, 16), "rise", probability=1.5)
    with pytest.raises(explainer.InputError, match="n_masks"):
        explainer.explain(tiny, torch.rand(1, 3, 16, 16), "rise", n_masks=0)
