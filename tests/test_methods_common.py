"""Every registered method on the bundled model, resnet18, convnext_atto and vit_tiny_patch16_224.

The methods come from the registry, each run with its own ``MethodSpec.smoke_params`` (a quick
setting), so a newly registered method is tested here without an edit. Where a method applies:
finite CPU float32 maps of the input's shape, the layer and parameters it reports. Everywhere: no hook
left behind (also after an error forced in the middle of the call) and the user's model unchanged
(parameters, buffers, training flag, requires_grad, .grad).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import explainer

#: Every method the package registers (explainer/attribution/methods/), not those a test or plugin adds.
METHODS = [name for name in explainer.list_methods()
           if explainer.get_method(name).runner.__module__.startswith("explainer.")]
#: Methods that refuse some architectures (by design), and the models they apply to.
APPLIES = {"lrp": {"resnet18"}, "attention_rollout": {"vit_tiny_patch16_224"}}


def _models() -> dict[str, explainer.Classifier]:
    import timm

    torch.manual_seed(0)
    return {
        # timm's resnet18 (torchvision's reuses one ReLU module, which Captum's DeepLIFT refuses)
        "resnet18": explainer.Classifier.from_module(timm.create_model("resnet18", pretrained=False), input_size=64,
                                                     name="resnet18"),
        "convnext_atto": explainer.Classifier.from_module(timm.create_model("convnext_atto", pretrained=False),
                                                          input_size=64, name="convnext_atto"),
        "vit_tiny_patch16_224": explainer.Classifier.from_module(
            timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64), input_size=64,
            name="vit_tiny_patch16_224"),
    }


@pytest.fixture(scope="module")
def models(bundled_classifier) -> dict[str, explainer.Classifier]:
    return {"bundled": bundled_classifier, **_models()}


def hook_count(module: nn.Module) -> int:
    """Every forward/backward (pre-)hook on every submodule."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, name, {})) for m in module.modules() for name in names)


def snapshot(module: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "grad": [p.grad is None for p in module.parameters()],
    }


def assert_unchanged(module: nn.Module, before: dict) -> None:
    after = snapshot(module)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["grad"] == before["grad"]
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key


def _run(classifier: explainer.Classifier, method: str, pixels: torch.Tensor, target=None) -> explainer.Explanation:
    smoke = explainer.get_method(method).smoke_params
    return explainer.explain(classifier, pixels, method, target=target, budget_seconds=None, **smoke)


def test_every_method_declares_smoke_params_inside_its_schema():
    assert len(METHODS) >= 22 and "gradcam" in METHODS and "lime" in METHODS
    for name in METHODS:
        spec = explainer.get_method(name)
        assert spec.resolve(spec.smoke_params) == {**spec.defaults, **spec.smoke_params}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", ["bundled", "resnet18", "convnext_atto", "vit_tiny_patch16_224"])
def test_method_on_model(method, model, models, photos, one_torch_thread):
    classifier, spec = models[model], explainer.get_method(method)
    pixels = (classifier.to_pixels([photos["cat"]]) if model == "bundled"
              else torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    module = classifier.module
    hooks, before = hook_count(module), snapshot(module)
    if model in APPLIES.get(method, {model}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            explanation = _run(classifier, method, pixels)
        attributions = explanation.attributions
        assert attributions.shape == pixels.shape
        assert attributions.dtype == torch.float32 and attributions.device.type == "cpu"
        assert torch.isfinite(attributions).all()
        assert explanation.inputs.shape == explanation.pixels.shape == attributions.shape
        assert explanation.heatmap().shape == (len(pixels), *pixels.shape[-2:])
        # the trained model always gives a map; a random net may not (a CAM's ReLU, LIME's lasso), and then says so
        said_zero = model != "bundled" and any("map is all zero" in str(w.message) for w in caught)
        assert attributions.abs().sum() > 0 or said_zero
        assert explanation.method == method and explanation.model_name == classifier.name
        assert len(explanation.targets) == len(explanation.labels) == len(pixels)
        assert (explanation.layer is not None) == spec.needs_layer
        for key, value in {**spec.defaults, **spec.smoke_params}.items():
            assert key in explanation.params and (value is None or explanation.params[key] == value)
    else:
        with pytest.raises(explainer.InputError, match="supports|needs"):
            _run(classifier, method, pixels)
    assert hook_count(module) == hooks
    assert_unchanged(module, before)


@pytest.mark.parametrize("method", METHODS)
def test_no_hook_left_after_a_forced_error(method, models, one_torch_thread):
    """An error raised inside the model's forward (after the method set its hooks) leaves none behind."""
    name = "vit_tiny_patch16_224" if method == "attention_rollout" else "resnet18"
    classifier = models[name]
    module = classifier.module
    armed = {"on": False}
    last = list(module.children())[-1]

    def explode(_module: nn.Module, _inputs: object, _output: object) -> None:
        if armed["on"]:
            raise RuntimeError("forced failure")

    handle = last.register_forward_hook(explode)
    from explainer.attribution.private_copy import _COPIES

    _COPIES.pop(module, None)  # a private copy made from now on carries the failing hook too
    hooks, before = hook_count(module), snapshot(module)
    pixels = torch.rand(2, 3, 64, 64)
    try:
        _run(classifier, method, pixels)  # builds caches (layer probe, private copy) unarmed
        armed["on"] = True
        with pytest.raises(explainer.ExplainerError, match="forced failure"):
            _run(classifier, method, pixels, target=[0, 1])  # explicit targets: the failure hits the runner
    finally:
        armed["on"] = False
    assert hook_count(module) == hooks
    if explainer.get_method(method).private_copy:  # Zennit's hooks and canonizers are gone from the copy too
        assert hook_count(_COPIES[module]) == hooks
        _COPIES.pop(module, None)
    assert_unchanged(module, before)
    handle.remove()


def test_train_mode_models_stay_in_train_mode_with_their_statistics(one_torch_thread):
    classifier = _models()["resnet18"]
    classifier.module.train()
    before = snapshot(classifier.module)
    for method in ("scorecam", "layercam", "eigencam", "lrp", "rise"):
        _run(classifier, method, torch.rand(1, 3, 64, 64))
    assert_unchanged(classifier.module, before)
