"""Activation patching on a small CNN trained on known_answer (real model, real data, one fixture per module)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import explainer
from explainer.inside.patching import corrupt, patch


@pytest.fixture(scope="module")
def known_answer(known_answer_cnn):
    return known_answer_cnn


def test_square_region_restores_and_stripe_does_not(known_answer):
    classifier, data = known_answer
    images, masks = data.x_test[:12], data.masks_test[:12, 0]
    bad = corrupt(classifier, images, "fill", region=masks)
    square, stripe = [], []
    for i in range(len(images)):
        square.append(patch(classifier, images[i : i + 1], bad[i : i + 1], layers="1", region=masks[i],
                            progress=False).restored[0, 0])
        unchanged_bright = ((images[i] - bad[i]).abs().sum(0) == 0) & (images[i].min(0).values > 0.55)
        stripe.append(patch(classifier, images[i : i + 1], bad[i : i + 1], layers="1", region=unchanged_bright,
                            progress=False).restored[0, 0])
    assert explainer.stats.mean_interval(square).mean >= 0.8
    assert explainer.stats.mean_interval(stripe).mean <= 0.2


def test_batched_equals_one_at_a_time_and_model_untouched(known_answer):
    classifier, data = known_answer
    images = data.x_test[:3]
    bad = corrupt(classifier, images, "blur")
    classifier.module.train()
    before = copy.deepcopy(classifier.module.state_dict())
    one = patch(classifier, images, bad, layers="1", granularity="position", batch_size=1, progress=False)
    many = patch(classifier, images, bad, layers="1", granularity="position", batch_size=64, progress=False)
    assert classifier.module.training and all(m.training for m in classifier.module.modules())
    assert all(torch.equal(before[k], v) for k, v in classifier.module.state_dict().items())
    assert not any(m._forward_hooks for m in classifier.module.modules())
    np.testing.assert_allclose(one.restored, many.restored, atol=1e-6, equal_nan=True)
    assert one.site_map().shape == (32, 32) and len(one.summary()) == 32 * 32
    classifier.module.eval()
