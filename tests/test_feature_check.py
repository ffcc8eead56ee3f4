"""The feature-picture check on the bundled model: a natural image the channel prefers passes, grey does not."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import explainer
from explainer.errors import InputError
from explainer.inside.feature_check import check_feature_picture, default_exemplar_images
from explainer.plots.inside import feature_visualization_figure

SIZE = 96


@pytest.fixture(scope="module")
def crops(bundled_classifier) -> torch.Tensor:
    pixels = default_exemplar_images(bundled_classifier)
    return F.interpolate(pixels, size=(SIZE, SIZE), mode="bilinear", antialias=True).clamp(0, 1)


def test_a_natural_image_the_channel_prefers_passes_and_grey_fails(bundled_classifier, crops):
    picture = explainer.visualize_channel(bundled_classifier, layer="blocks.4", channel=20, steps=1, size=SIZE,
                                          check=False)
    assert picture.check is None and "Not checked" in picture.verdict()
    best = check_feature_picture(bundled_classifier, picture, crops).exemplars.indices[0]
    held_out = torch.cat([crops[:best], crops[best + 1 :]])  # the picture is not among the images searched
    natural = check_feature_picture(bundled_classifier, dataclasses.replace(picture, image=crops[best]), held_out)
    assert natural.reach >= 1.0 and natural.agreement.difference.low > 0, natural.summary()
    assert natural.trustworthy and "Trust it" in natural.verdict()
    grey = check_feature_picture(bundled_classifier, dataclasses.replace(picture, image=torch.full_like(crops[0], 0.5)),
                                 crops)
    assert grey.reach < 1.0 and not grey.trustworthy and "does not reach" in grey.verdict()
    assert natural.searched == len(held_out) and natural.agreement.n == 9 and len(natural.exemplars.indices) == 9
    with pytest.raises(InputError, match="at least 2 × top_k = 18 images"):
        check_feature_picture(bundled_classifier, picture, crops[:10])


def test_visualize_channel_checks_its_picture_and_leaves_the_model_alone(bundled_classifier, crops):
    module = bundled_classifier.module
    module.train()
    before = copy.deepcopy(module.state_dict())
    try:
        result = explainer.visualize_channel(bundled_classifier, layer="blocks.4", channel=20, steps=4, size=SIZE,
                                             exemplars=crops, top_k=5)
        assert module.training and all(torch.equal(before[k], v) for k, v in module.state_dict().items())
        assert all(p.grad is None for p in module.parameters())
    finally:
        module.eval()
    assert result.check is not None and len(result.check.exemplars.indices) == 5
    row = result.summary().iloc[0]
    assert {"reach", "agreement", "ci_low", "trustworthy"} <= set(row.index)
    assert row["reach"] == pytest.approx(result.check.picture_activation / result.check.exemplar_activation)
    assert result.to_dict()["check"]["trustworthy"] == result.check.trustworthy
    figure = feature_visualization_figure(result)
    assert sum(trace.type == "image" for trace in figure.data) == 1 + 5
    assert ("NOT trustworthy" in figure.layout.title.text) != result.check.trustworthy
