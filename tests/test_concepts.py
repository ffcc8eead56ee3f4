"""NMF concepts on a small CNN trained on known_answer (real model, real data)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainer
from explainer.inside.concepts import _activations, concept_maps


@pytest.fixture(scope="module")
def known_answer():
    torch.manual_seed(0)
    data = explainer.load_dataset("known_answer", n_train=600, n_test=64, seed=0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 8 * 8, data.num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(6):
        for batch in torch.randperm(len(data.y_train)).split(32):
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
    return explainer.Classifier.from_module(model, labels=data.class_names, input_size=32), data


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
