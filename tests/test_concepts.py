"""NMF concepts on a small CNN trained on known_answer (real model, real data)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import explainer
from explainer.inside.concepts import _activations, concept_maps


@pytest.fixture(scope="module")
def known_answer(known_answer_cnn):
    return known_answer_cnn


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.xfail(reason="issue 19 target not met yet: best concept holds ~18-22 % of its map mass in the square, not 50 %",
                   strict=False)
def test_a_concept_lives_in_the_square_and_model_untouched(known_answer):
    classifier, data = known_answer
    chosen = data.y_test == 0
    images, masks = data.x_test[chosen][:10], data.masks_test[chosen][:10, 0]
    classifier.module.train()
    before = copy.deepcopy(classifier.module.state_dict())
    found = explainer.concepts(classifier, images, layer="1", n_concepts=8)
    assert classifier.module.training and all(torch.equal(before[k], v) for k, v in classifier.module.state_dict().items())
    classifier.module.eval()
    maps = concept_maps(found.directions, _activations(classifier, "1", images))
    maps = F.interpolate(maps, size=(32, 32), mode="nearest")
    inside = (maps * masks[:, None]).sum((0, 2, 3)) / maps.sum((0, 2, 3)).clamp_min(1e-12)
    assert float(inside.max()) >= 0.5
    assert len(found.summary()) == 8 and found.importance[0].n == 10
