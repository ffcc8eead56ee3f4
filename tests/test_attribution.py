"""Attribution engine: known answers, targets, errors, hooks, plots, CLI (every method on four architectures:
tests/test_methods_common.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainer
from explainer import METHODS, Explanation, explain, list_methods
from explainer.attribution.registry import KINDS
from explainer.cli import main as cli_main
from explainer.errors import ExplainerError, InputError
from explainer.models.layers import find_cam_layer
from explainer.plots.attribution import (
    attribution_overlay,
    methods_grid,
    normalize_heatmap,
    normalized_heatmap,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def timm_models() -> dict[str, explainer.Classifier]:
    """A random-weight timm resnet18 at 64 px (it accepts any size)."""
    classifier = explainer.load_model("resnet18", pretrained=False, device="cpu")
    classifier.input_size = (64, 64)
    return {"resnet18": classifier}


def _hook_count(module: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in module.modules()
    )


def test_registry_describes_every_method():
    assert list_methods() == list(METHODS)
    assert {"saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "deeplift", "guided_backprop",
            "occlusion", "feature_ablation", "gradcam", "guided_gradcam", "gradcam_plus_plus",
            "input_x_gradient"} <= set(METHODS)
    for name, spec in METHODS.items():
        assert spec.name == name and isinstance(spec.kind, str) and spec.kind and spec.title and spec.description
    assert {METHODS[name].kind for name in ("saliency", "occlusion", "gradcam")} <= set(KINDS)


# ------------------------------------------------------------------------------- known answer
@pytest.fixture(scope="module")
def known_answer():
    """A tiny CNN trained (~2 s) to tell the quadrant of a bright square; the square is the known answer."""
    torch.manual_seed(0)
    data = explainer.load_dataset("known_answer", n_train=600, n_test=64, seed=0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 8 * 8, data.num_classes),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(6):
        for batch in torch.randperm(len(data.y_train)).split(32):
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean()
    assert accuracy > 0.9
    return explainer.Classifier.from_module(model, labels=data.class_names, input_size=32), data


def test_ig_and_saliency_find_the_known_answer(known_answer):
    """The trained CNN's IG and saliency maps put more mass on the square than its area share."""
    classifier, data = known_answer
    images, masks = data.x_test[:16], data.masks_test[:16, 0]
    area_share = masks.float().mean().item()
    for method, params in (("integrated_gradients", {"n_steps": 16}), ("saliency", {})):
        heat = explain(classifier, images, method, target=data.y_test[:16].tolist(), **params).heatmap(absolute=True)
        inside = float((heat * masks).sum() / heat.sum())
        assert inside > area_share + 0.05, f"{method}: {inside:.3f} of the mass in the mask (area {area_share:.3f})"


def test_integrated_gradients_completeness(known_answer):
    """IG attributions add up to score(input) − score(baseline); Captum's delta measures the gap."""
    classifier, data = known_answer
    images = data.x_test[:4]
    explanation = explain(classifier, images, "integrated_gradients", n_steps=32)
    with torch.no_grad():
        logits = classifier.module(torch.cat([explanation.inputs, torch.zeros_like(explanation.inputs)]))
    index = torch.tensor(explanation.targets)
    gaps = logits[:4].gather(1, index[:, None])[:, 0] - logits[4:].gather(1, index[:, None])[:, 0]
    assert (gaps.abs() > 1).all()
    assert explanation.convergence_delta is not None and explanation.convergence_delta.shape == (4,)
    assert (explanation.convergence_delta.abs() < 0.02 * gaps.abs()).all()
    assert torch.allclose(explanation.attributions.sum(dim=(1, 2, 3)), gaps, rtol=0.02)


# ----------------------------------------------------------------------------------- targets
def test_target_none_int_label_and_list(bundled_classifier, photos):
    images = [photos["cat"], photos["coffee"]]
    predicted = [p[0].index for p in bundled_classifier.predict(images, top_k=1)]
    assert explain(bundled_classifier, images, "gradcam").targets == predicted
    assert explain(bundled_classifier, images, "gradcam", target=285).targets == [285, 285]
    by_label = explain(bundled_classifier, images, "gradcam", target="espresso")
    assert by_label.targets == [bundled_classifier.class_index("espresso")] * 2
    assert by_label.labels == ["espresso", "espresso"]
    per_image = explain(bundled_classifier, images, "gradcam", target=["Egyptian cat", 967])
    assert per_image.targets == [285, 967]
    assert not torch.allclose(per_image.attributions[0], by_label.attributions[0])


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (1000, "out of range"),
        (-1, "out of range"),
        ("egyptian catt", "Egyptian cat"),
        ([1, 2, 3], "one per image"),
    ],
)
def test_bad_targets_are_explained(bundled_classifier, photos, target, message):
    with pytest.raises(InputError, match=message):
        explain(bundled_classifier, [photos["cat"], photos["coffee"]], "saliency", target=target)


# ------------------------------------------------------------------------------------ errors
def test_unknown_method_lists_valid_ones(bundled_classifier, photos):
    with pytest.raises(InputError) as info:
        explain(bundled_classifier, photos["cat"], "integrated_gradient")
    assert "integrated_gradients" in str(info.value) and "gradcam_plus_plus" in str(info.value)


def test_layer_errors(bundled_classifier, photos):
    with pytest.raises(InputError, match="Unknown layer 'bn3'.*bn2"):
        explain(bundled_classifier, photos["cat"], "gradcam", layer="bn3")
    with pytest.raises(InputError, match="does not output a spatial map"):
        explain(bundled_classifier, photos["cat"], "gradcam", layer="classifier")
    with pytest.raises(InputError, match="only applies to CAM methods"):
        explain(bundled_classifier, photos["cat"], "saliency", layer="bn2")
    early = explain(bundled_classifier, photos["cat"], "gradcam", layer="blocks.5", target=285)
    assert early.layer == "blocks.5" and early.params["layer"] == "blocks.5"


def test_wrong_shapes_and_params(bundled_classifier, photos):
    with pytest.raises(InputError, match="channel"):
        explain(bundled_classifier, torch.rand(2, 4, 32, 32), "saliency")
    with pytest.raises(InputError, match=r"\(C, H, W\)"):
        explain(bundled_classifier, torch.rand(32, 32), "saliency")
    with pytest.raises(InputError, match="n_steps, integration, baseline"):
        explain(bundled_classifier, photos["cat"], "integrated_gradients", steps=4)
    with pytest.raises(InputError, match="positive integer"):
        explain(bundled_classifier, photos["cat"], "integrated_gradients", n_steps=0)
    with pytest.raises(InputError, match="zero, black, white, blur"):
        explain(bundled_classifier, photos["cat"], "deeplift", baseline="grey")
    with pytest.raises(InputError, match="internal_batch_size"):
        explain(bundled_classifier, photos["cat"], "saliency", internal_batch_size=0)
    with pytest.raises(InputError, match="window=300 is larger than the 224×224 input"):
        explain(bundled_classifier, photos["cat"], "occlusion", target=285, window=300)
    with pytest.raises(InputError, match="one shared distribution"):
        explain(bundled_classifier, photos["cat"], "gradient_shap", target=285, baseline="blur")


class _Flaky(nn.Module):
    """A tiny CNN that can be told to fail in the middle of its forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 3)
        self.register_buffer("fail", torch.tensor(False))  # a buffer, so private copies follow it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.act(self.conv(x))
        if self.fail:
            raise RuntimeError("simulated failure inside the model")
        return self.head(features.mean(dim=(2, 3)))


class _TinyTokens(nn.Module):
    """A ViT-shaped model: 4×4 patch tokens plus a class token, one token mixer, mean-pooled head."""

    num_prefix_tokens = 1
    embed_dim = 8

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, stride=4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)
        self.register_buffer("fail", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = self.block(torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1))
        if self.fail:
            raise RuntimeError("simulated failure inside the model")
        return self.head(torch.tanh(tokens).mean(dim=1))


@pytest.mark.filterwarnings("ignore:.*map is all zero")  # random tiny models: CAMs may be empty
@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "guided_gradcam", "deeplift", "saliency"])
@pytest.mark.parametrize("model_class", [_Flaky, _TinyTokens])
def test_no_hooks_left_after_errors(model_class, method):
    torch.manual_seed(0)
    module = model_class()
    classifier = explainer.Classifier.from_module(module, labels=["a", "b", "c"], input_size=16)
    find_cam_layer(classifier)  # probe while the model still works
    before = _hook_count(module)
    explain(classifier, torch.rand(2, 3, 16, 16), method, target=0)
    assert _hook_count(module) == before
    module.fail.fill_(True)
    with pytest.raises(ExplainerError, match=r"failed on model custom: RuntimeError: simulated failure") as info:
        explain(classifier, torch.rand(2, 3, 16, 16), method, target=0)
    assert not isinstance(info.value, InputError)
    assert _hook_count(module) == before
    assert module.training is False


# ------------------------------------------------------------------------- model stays unchanged
@pytest.mark.parametrize("method", ["deeplift", "guided_backprop", "guided_gradcam"])
def test_private_copy_leaves_the_model_unchanged(bundled_classifier, photos, method):
    module = bundled_classifier.module
    state = {k: v.clone() for k, v in module.state_dict().items()}
    layout = [(name, type(m), getattr(m, "inplace", None)) for name, m in module.named_modules()]
    grads = [p.requires_grad for p in module.parameters()]
    explain(bundled_classifier, photos["cat"], method, target=285)
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    assert [(name, type(m), getattr(m, "inplace", None)) for name, m in module.named_modules()] == layout
    assert [p.requires_grad for p in module.parameters()] == grads
    assert all(p.grad is None for p in module.parameters())


@pytest.mark.filterwarnings("ignore:.*map is all zero")  # a random tiny net may have an empty CAM
@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus", "integrated_gradients", "occlusion"])
def test_model_in_train_mode_with_gradients_is_left_exactly_as_it_was(method):
    """Issue 15: parameters, buffers, training flags and accumulated .grad are unchanged by explain()."""
    generator = torch.Generator().manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                           nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    classifier = explainer.Classifier.from_module(module, input_size=16)  # wrapping puts it in eval mode
    module.train()
    module[4].eval()  # a frozen BatchNorm inside a model in train mode keeps its own flag
    images = torch.rand(2, 3, 16, 16, generator=generator)
    module(images).sum().backward()  # accumulated gradients the user has not applied yet
    params = {k: v.detach().clone() for k, v in module.named_parameters()}
    buffers = {k: v.clone() for k, v in module.named_buffers()}
    grads = {k: v.grad.clone() for k, v in module.named_parameters()}
    flags = [m.training for m in module.modules()]
    cheap = {"integrated_gradients": {"n_steps": 4}, "occlusion": {"window": 8, "stride": 8}}.get(method, {})
    explain(classifier, images, method, target=1, **cheap)
    assert all(torch.equal(params[k], v) for k, v in module.named_parameters())
    assert all(torch.equal(buffers[k], v) for k, v in module.named_buffers())
    assert all(v.grad is not None and torch.equal(grads[k], v.grad) for k, v in module.named_parameters())
    assert [m.training for m in module.modules()] == flags


def test_guided_backprop_applies_its_rule_to_relu6(bundled_classifier, photos):
    """EfficientNet-Lite uses ReLU6, which Captum's rule skips; the private copy makes it count."""
    guided = explain(bundled_classifier, photos["cat"], "guided_backprop", target=285).attributions
    plain = explain(bundled_classifier, photos["cat"], "input_x_gradient", target=285)
    gradient = plain.attributions / plain.inputs.where(plain.inputs != 0, torch.ones(()))
    assert not torch.allclose(guided, gradient, atol=1e-6)


def test_private_copy_follows_weight_changes():
    torch.manual_seed(0)
    module = _Flaky()
    classifier = explainer.Classifier.from_module(module, labels=["a", "b", "c"], input_size=16)
    images = torch.rand(2, 3, 16, 16)
    first = explain(classifier, images, "deeplift", target=1).attributions
    with torch.no_grad():
        module.conv.weight.mul_(-2.0)
    second = explain(classifier, images, "deeplift", target=1).attributions
    fresh = explainer.Classifier.from_module(copy.deepcopy(module), labels=["a", "b", "c"], input_size=16)
    assert not torch.allclose(first, second)
    assert torch.allclose(second, explain(fresh, images, "deeplift", target=1).attributions, atol=1e-6)


# ------------------------------------------------------------------------------ consistency
def test_batch_equals_single_calls(bundled_classifier, photos):
    images = [photos["cat"], photos["coffee"]]
    batch = explain(bundled_classifier, images, "saliency")
    singles = [explain(bundled_classifier, image, "saliency") for image in images]
    assert torch.allclose(batch.attributions, torch.cat([s.attributions for s in singles]), atol=1e-5)
    assert batch.targets == [s.targets[0] for s in singles]


def test_memory_budget_sets_passes_without_changing_results(timm_models):
    classifier = timm_models["resnet18"]
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    roomy = explain(classifier, images, "integrated_gradients", target=0, n_steps=8)
    tight = explain(classifier, images, "integrated_gradients", target=0, n_steps=8, memory_budget_mb=5)
    forced = explain(classifier, images, "integrated_gradients", target=0, n_steps=8, internal_batch_size=1)
    per_sample = roomy.params["estimated_mb_per_sample"]
    assert tight.params["internal_batch_size"] == int(5 // per_sample) < roomy.params["internal_batch_size"]
    assert forced.params["internal_batch_size"] == 1 and forced.params["images_per_pass"] == 1
    assert torch.allclose(roomy.attributions, tight.attributions, atol=1e-5)
    assert torch.allclose(roomy.attributions, forced.attributions, atol=1e-5)


def test_measured_memory_of_one_sample_is_about_76_mib(bundled_classifier):
    """~76 MiB of saved activations per 224 px sample for EfficientNet-Lite0 (docs/attribution.md, "Memory")."""
    from explainer.attribution.explanation import sample_memory

    memory = sample_memory(bundled_classifier, (3, 224, 224))
    assert 60 * 2**20 < memory.saved_bytes < 95 * 2**20
    assert memory.forward_bytes < memory.backward_bytes


def test_works_inside_inference_mode(bundled_classifier, photos):
    outside = explain(bundled_classifier, photos["cat"], "input_x_gradient", target=285)
    with torch.inference_mode():
        inside = explain(bundled_classifier, photos["cat"], "input_x_gradient", target=285)
    assert torch.allclose(outside.attributions, inside.attributions)
    inside.attributions.mul_(2)  # a normal tensor the caller may modify


def test_random_methods_are_reproducible(timm_models):
    classifier = timm_models["resnet18"]
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    first = explain(classifier, images, "smoothgrad", n_samples=3, target=0).attributions
    state = torch.get_rng_state()
    again = explain(classifier, images, "smoothgrad", n_samples=3, target=0).attributions
    other = explain(classifier, images, "smoothgrad", n_samples=3, target=0, seed=1).attributions
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), state)


# -------------------------------------------------------------------------------- CAM methods
def test_gradcam_plus_plus_differs_from_gradcam_but_correlates(bundled_classifier, photos):
    cam = explain(bundled_classifier, photos["cat"], "gradcam", target=285).heatmap()[0].flatten()
    plus = explain(bundled_classifier, photos["cat"], "gradcam_plus_plus", target=285).heatmap()[0].flatten()
    assert not torch.allclose(cam / cam.max(), plus / plus.max(), atol=1e-2)
    assert torch.corrcoef(torch.stack([cam, plus]))[0, 1] > 0.5


class _CamNet(nn.Module):
    """conv → ReLU (the CAM layer) → global average pool → linear: Grad-CAM++ has a closed form here."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, stride=2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean(dim=(2, 3)))


def test_gradcam_plus_plus_matches_closed_form():
    """With logit = Σ_k w_k mean(A_k): α = 1 / (2 + S_k w_k / Z), weight_k = ReLU(w_k) / (2 + S_k w_k / Z)."""
    torch.manual_seed(3)
    model = _CamNet()
    classifier = explainer.Classifier.from_module(model, labels=["a", "b"], input_size=16)
    images = torch.rand(2, 3, 16, 16)
    result = explain(classifier, images, "gradcam_plus_plus", target=1, layer="act")
    with torch.no_grad():
        maps = model.act(model.conv(images))  # (2, 6, 8, 8)
        w = model.fc.weight[1].view(1, -1, 1, 1)
        size = maps.shape[2] * maps.shape[3]
        weights = F.relu(w) / (2 + maps.sum(dim=(2, 3), keepdim=True) * w / size)
        expected = F.relu((weights * maps).sum(dim=1, keepdim=True))
        expected = F.interpolate(expected, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(result.attributions[:, :1], expected, atol=1e-5)
    assert torch.equal(result.attributions[:, 0], result.attributions[:, 2])  # the map in every channel
    gradcam = explain(classifier, images, "gradcam", target=1, layer="act")
    expected_cam = F.interpolate(F.relu((w / size * maps).sum(1, keepdim=True)), size=(16, 16), mode="bilinear")
    assert torch.allclose(gradcam.attributions[:, :1], expected_cam.detach(), atol=1e-5)


def test_all_zero_cam_maps_come_with_a_warning():
    torch.manual_seed(5)
    model = _CamNet()
    with torch.no_grad():
        model.fc.weight[0] = -model.fc.weight[0].abs()  # class 0 evidence negative everywhere (A ≥ 0 after ReLU)
    classifier = explainer.Classifier.from_module(model, labels=["a", "b"], input_size=16)
    with pytest.warns(UserWarning, match=r"Grad-CAM map is all zero for image\(s\) \[0, 1\].*layer 'act'"):
        result = explain(classifier, torch.rand(2, 3, 16, 16), "gradcam", target=0)
    assert not result.attributions.any()


def test_gradcam_on_token_grid_matches_manual_reshape():
    torch.manual_seed(4)
    model = _TinyTokens()
    classifier = explainer.Classifier.from_module(model, labels=["a", "b", "c"], input_size=16)
    images = torch.rand(2, 3, 16, 16)
    result = explain(classifier, images, "gradcam", target=2)
    assert result.layer == "block"
    captured = {}
    handle = model.block.register_forward_hook(lambda m, i, o: captured.setdefault("tokens", o))
    logits = model(images)
    handle.remove()
    tokens = captured["tokens"]
    (grads,) = torch.autograd.grad(logits[:, 2].sum(), tokens)
    grid = tokens[:, 1:].transpose(1, 2).reshape(2, 8, 4, 4)
    grid_grads = grads[:, 1:].transpose(1, 2).reshape(2, 8, 4, 4)
    expected = F.relu((grid_grads.mean(dim=(2, 3), keepdim=True) * grid).sum(1, keepdim=True))
    expected = F.interpolate(expected, size=(16, 16), mode="bilinear", align_corners=False).detach()
    assert torch.allclose(result.attributions[:, :1], expected, atol=1e-5)


# ------------------------------------------------------------------------------------- plots
def test_normalisation_clips_outliers():
    values = np.linspace(-1, 1, 1000, dtype=np.float32)
    values[0] = -100.0
    signed = normalize_heatmap(values, signed=True)
    assert signed.dtype == np.float32 and signed.min() == -1.0 and signed.max() == pytest.approx(1.0)
    assert (signed == -1).sum() >= 1 and abs(signed[500]) < 0.01
    absolute = normalize_heatmap(values, signed=False)
    assert absolute.min() >= 0 and absolute.max() == 1.0
    assert not normalize_heatmap(np.zeros((4, 4)), signed=True).any()


def test_overlay_and_grid_figures(bundled_classifier, photos):
    images = [photos["cat"], photos["coffee"]]
    ig = explain(bundled_classifier, images, "integrated_gradients", target=285, n_steps=4)
    cam = explain(bundled_classifier, images, "gradcam", target=285)
    figure = attribution_overlay(ig, index=1)
    heat = figure.data[1]
    assert heat.type == "heatmap" and heat.zmid == 0 and heat.zmin == -1 and heat.zmax == 1
    assert np.asarray(heat.z).dtype == np.float32 and np.asarray(heat.z).shape == (224, 224)
    assert np.allclose(heat.z, normalized_heatmap(ig, 1))
    absolute = attribution_overlay(ig, index=1, absolute=True).data[1]
    assert absolute.zmin == 0 and np.asarray(absolute.z).min() >= 0
    unsigned = attribution_overlay(cam).data[1]
    assert unsigned.zmin == 0  # Grad-CAM is non-negative: sequential scale
    grid = methods_grid([ig, cam], index=0)
    assert [t.type for t in grid.data] == ["image", "image", "heatmap", "image", "heatmap"]
    assert "Integrated Gradients" in grid.layout.annotations[1].text
    with pytest.raises(InputError, match="index must be between 0 and 1"):
        attribution_overlay(ig, index=2)
    other = explain(bundled_classifier, [photos["rocket"], photos["coffee"]], "gradcam")
    with pytest.raises(InputError, match="different image"):
        methods_grid([ig, other], index=0)


def test_explanation_heatmap_signed_and_absolute(bundled_classifier, photos):
    explanation = explain(bundled_classifier, photos["cat"], "input_x_gradient", target=285)
    assert isinstance(explanation, Explanation)
    assert torch.allclose(explanation.heatmap(), explanation.attributions.sum(1))
    assert torch.allclose(explanation.heatmap(absolute=True), explanation.attributions.abs().sum(1))
    assert explanation.heatmap().min() < 0 < explanation.heatmap().max()


# --------------------------------------------------------------------------------------- CLI
def test_cli_explain_json(tmp_path, photos, capsys):
    image = tmp_path / "cat.png"
    photos["cat"].save(image)
    out = tmp_path / "figures"
    code = cli_main(["explain", str(image), "--method", "gradcam", "--method", "saliency", "--out-dir", str(out),
                     "--no-png", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == ["gradcam", "saliency"]
    for row in rows:
        assert row["image"] == str(image) and row["target"] == 285 and row["label"] == "Egyptian cat"
        assert row["seconds"] > 0 and row["png"] is None
        html = Path(row["out"]).read_text()
        assert "cdn.plot.ly" in html or "plotly-" in html
    assert (out / "cat_0_methods.html").exists()


def test_cli_explain_errors(tmp_path, photos, capsys):
    image = tmp_path / "cat.png"
    photos["cat"].save(image)
    assert cli_main(["explain", str(image), "--method", "gradcamm", "--out-dir", str(tmp_path), "--no-png"]) == 2
    assert "Did you mean 'gradcam'" in capsys.readouterr().err
