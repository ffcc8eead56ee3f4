"""LIME and KernelSHAP equal Captum called directly with the same superpixel mask and seed."""

from __future__ import annotations

import captum.attr
import pytest
import torch
import torchvision

import explainer


@pytest.fixture(scope="module")
def resnet18() -> explainer.Classifier:
    torch.manual_seed(0)
    return explainer.Classifier.from_module(torchvision.models.resnet18(weights=None), input_size=64, name="resnet18")


def captum_directly(name: str, model, inputs, segments, targets, n_samples, seed, per_eval) -> torch.Tensor:
    """What a Captum user writes: one image at a time, global RNG seeded, zero baseline."""
    maps = []
    for i, target in enumerate(targets):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            maps.append(getattr(captum.attr, name)(model).attribute(
                inputs[i : i + 1], baselines=torch.zeros_like(inputs[i : i + 1]), target=target,
                feature_mask=segments[i : i + 1], n_samples=n_samples, perturbations_per_eval=per_eval))
    return torch.cat(maps)


@pytest.mark.parametrize(("method", "peer"), [("lime", "Lime"), ("kernel_shap", "KernelShap")])
@pytest.mark.parametrize("segmentation", ["slic", "grid"])
def test_equals_captum_with_the_same_mask_and_seed(method, peer, segmentation, resnet18, photos, one_torch_thread):
    pixels = resnet18.to_pixels([photos["astronaut"], photos["coffee"]])
    explanation = explainer.explain(resnet18, pixels, method, n_samples=24, n_segments=9, seed=5,
                                    segmentation=segmentation)
    segments = explanation.segments
    assert segments is not None and segments.shape == (2, 1, 64, 64) and segments.dtype == torch.long
    expected = captum_directly(peer, resnet18.module, explanation.inputs, segments, explanation.targets, 24, 5,
                               explanation.params["perturbations_per_eval"])
    torch.testing.assert_close(explanation.attributions, expected, atol=1e-5, rtol=1e-4)
    for i in range(2):  # one value per superpixel
        for segment in segments[i, 0].unique():
            values = explanation.attributions[i][:, segments[i, 0] == segment]
            assert torch.allclose(values, values.flatten()[0])


def test_seed_makes_it_reproducible_and_keeps_the_global_rng(resnet18, one_torch_thread):
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    state = torch.get_rng_state()
    a = explainer.explain(resnet18, pixels, "lime", n_samples=16, n_segments=9, segmentation="grid", seed=1)
    b = explainer.explain(resnet18, pixels, "lime", n_samples=16, n_segments=9, segmentation="grid", seed=1,
                          internal_batch_size=3)
    c = explainer.explain(resnet18, pixels, "lime", n_samples=16, n_segments=9, segmentation="grid", seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(a.attributions, b.attributions, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(a.attributions, c.attributions)


def test_an_image_does_not_depend_on_its_batch(resnet18, one_torch_thread):
    pixels = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    both = explainer.explain(resnet18, pixels, "kernel_shap", n_samples=16, segmentation="grid", n_segments=4)
    alone = explainer.explain(resnet18, pixels[2:], "kernel_shap", n_samples=16, segmentation="grid", n_segments=4)
    torch.testing.assert_close(both.attributions[2:], alone.attributions, atol=1e-5, rtol=1e-4)


def test_too_few_superpixels_is_refused_with_the_fix(resnet18):
    flat = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))  # SLIC: one segment on this noise
    with pytest.raises(explainer.InputError, match="at least 2 superpixels.*segmentation='grid'"):
        explainer.explain(resnet18, flat, "kernel_shap", n_samples=8)
