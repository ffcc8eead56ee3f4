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


# ------------------------------------------------------------------------ estimate, progress and budget
def test_patch_prints_an_estimate_in_seconds_and_a_bar_and_nothing_without_progress(known_answer, capsys):
    classifier, data = known_answer
    images = data.x_test[:2]
    bad = corrupt(classifier, images, "blur")
    shown = patch(classifier, images, bad, layers="1", granularity="channel")
    err = capsys.readouterr().err
    # 16 channels × 2 pairs patched + the clean and corrupted runs of both pairs
    assert "estimate: ≈" in err and "36 forward pass(es) (16 site(s) × 2 pair(s) patched" in err and "measured on cpu" in err
    assert "patch: 100%" in err and "32/32" in err
    silent = patch(classifier, images, bad, layers="1", granularity="channel", progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_allclose(silent.restored, shown.restored, equal_nan=True)


def test_patch_over_budget_is_refused_before_the_work_with_the_estimate(known_answer, capsys):
    classifier, data = known_answer
    images = data.x_test[:4]
    bad = corrupt(classifier, images, "blur")
    seen: list[int] = []
    handle = classifier.module.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    try:
        with pytest.raises(explainer.InputError, match=r"This patch call is estimated at ≈ .* forward pass.*over the "
                                                       r"time budget.*granularity=.*budget_seconds=None"):
            patch(classifier, images, bad, layers="1", granularity="position", budget_seconds=1e-6)
    finally:
        handle.remove()
    assert sum(seen) <= 10  # at most the timed passes (1 + 1 + 8 copies), none of the 4 × 1,024 patched forwards
    assert "patch:" not in capsys.readouterr().err
