"""Inside the network: anatomy, activations, channel features, ablation, embeddings, convolution step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import explainer
from explainer import (
    Classifier,
    InputError,
    ablate,
    cam_channel_importance,
    conv_step,
    embed_dataset,
    top_activating,
    visualize_channel,
)
from explainer.inside.activations import layer_activations
from explainer.models.anatomy import model_anatomy
from explainer.plots import inside as plots


def _forward_hook_count(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.fixture(scope="module")
def models(bundled_classifier) -> dict[str, Classifier]:
    return {
        "efficientnet_lite0": bundled_classifier,
        "resnet18": explainer.load_model("resnet18", pretrained=False, device="cpu"),
        "vit_tiny_patch16_224": explainer.load_model("vit_tiny_patch16_224", pretrained=False, device="cpu"),
    }


@pytest.fixture(scope="module")
def photo_list(photos) -> list:
    return list(photos.values())


@pytest.fixture(scope="module")
def digits() -> explainer.Dataset:
    return explainer.load_dataset("digits")


@pytest.fixture(scope="module")
def digits_cnn(digits) -> nn.Module:
    """A small CNN trained on digits with a plain loop (~97% test accuracy in a few seconds)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(20):
        order = torch.randperm(len(digits.y_train))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss = F.cross_entropy(net(digits.x_train[batch]), digits.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(digits.x_test).argmax(1) == digits.y_test).float().mean().item()
    assert accuracy > 0.93, f"the test CNN trained badly ({accuracy:.1%})"
    return net


# ----------------------------------------------------------------------------------------------- anatomy
@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "vit_tiny_patch16_224"])
def test_anatomy_rows_sum_to_model_parameters(models, name):
    classifier = models[name]
    total = sum(p.numel() for p in classifier.module.parameters())
    for depth in (1, 2):
        result = model_anatomy(classifier, depth=depth)
        assert result.table["params"].sum() == total == result.total_params
        assert result.table["role"].iloc[0] == "input" and result.table["role"].iloc[-1] == "output"
        assert result.table["output_shape"].iloc[-1] == "1000"
        assert "not run" not in set(result.table["output_shape"])
    fig = plots.anatomy_figure(model_anatomy(classifier))
    assert sum(len(trace.y) for trace in fig.data) == len(model_anatomy(classifier).table)


def test_anatomy_of_efficientnet_shows_its_stages(bundled_classifier):
    result = model_anatomy(bundled_classifier)
    assert result.layers == ["conv_stem", "bn1", *[f"blocks.{i}" for i in range(7)], "conv_head", "bn2",
                             "global_pool", "classifier"]
    shapes = dict(zip(result.table["layer"], result.table["output_shape"]))
    assert shapes["input"] == "3 × 224 × 224" and shapes["blocks.6"] == "320 × 7 × 7"
    assert shapes["global_pool"] == "1280"
    with pytest.raises(InputError, match="depth must be 1 or more"):
        model_anatomy(bundled_classifier, depth=0)


def test_anatomy_gives_vit_position_embeddings_a_row(models):
    table = model_anatomy(models["vit_tiny_patch16_224"]).table
    row = table[table["layer"] == "cls_token, pos_embed"]
    assert int(row["params"].iloc[0]) == 192 + 197 * 192


# ------------------------------------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "vit_tiny_patch16_224"])
def test_activations_capture_maps_and_rank_channels(models, photo_list, name):
    classifier = models[name]
    before = _forward_hook_count(classifier.module)
    result = layer_activations(classifier, photo_list[:2])
    assert _forward_hook_count(classifier.module) == before
    assert 3 <= len(result.layers) <= 6
    for layer in result.layers.values():
        assert layer.maps.shape[0] == 2 and layer.maps.dtype == torch.float32
        assert 0.0 <= layer.sparsity <= 1.0 and layer.max >= layer.mean >= layer.min
        assert np.all(np.diff(layer.channel_means[layer.ranking]) <= 0)
    last = list(result.layers.values())[-1]
    if name == "vit_tiny_patch16_224":
        assert last.kind == "tokens" and tuple(last.maps.shape) == (2, 192, 14, 14)
        assert last.output_shape == (197, 192)
    else:
        assert last.kind == "spatial" and tuple(last.maps.shape[-2:]) == (7, 7)
    fig = plots.feature_maps_figure(result, last.name, image=1, channels=6)
    assert len(fig.data) == 6 and fig.data[0].z.dtype == np.float32
    assert fig.data[0].z.shape == tuple(last.maps.shape[-2:])
    assert len(plots.layer_stats_figure(result).data) == 2


def test_activations_equal_an_independent_forward(bundled_classifier, photos):
    classifier = bundled_classifier
    result = layer_activations(classifier, photos["cat"], layers=["conv_stem", "bn2"])
    inputs = classifier.preprocess(photos["cat"])
    stem = classifier.get_layer("conv_stem")
    expected = F.conv2d(inputs, stem.weight, stride=2, padding=1)
    torch.testing.assert_close(result["conv_stem"].maps, expected.detach(), rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        features = classifier.module.forward_features(inputs)
    torch.testing.assert_close(result["bn2"].maps, features, rtol=1e-4, atol=1e-4)
    assert result.predictions[0][0].label == "Egyptian cat"
    top = result["bn2"].top_channels(3, image=0)
    assert top == np.argsort(-features[0].mean((1, 2)).numpy())[:3].tolist()


def test_hooks_are_removed_after_an_error(bundled_classifier, photos):
    classifier = bundled_classifier
    before = _forward_hook_count(classifier.module)

    def explode(_module, _inputs):
        raise RuntimeError("forced failure inside the forward pass")

    handle = classifier.get_layer("conv_head").register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="forced failure"):
            layer_activations(classifier, photos["cat"], layers=["blocks.2", "bn2"])
        with pytest.raises(RuntimeError, match="forced failure"):
            ablate(classifier, photos["cat"], layer="blocks.2", channels=[0, 1])
        with pytest.raises(RuntimeError, match="forced failure"):
            cam_channel_importance(classifier, photos["cat"])
    finally:
        handle.remove()
    assert _forward_hook_count(classifier.module) == before


def test_unknown_layers_and_channels_fail_clearly(bundled_classifier, photos):
    classifier = bundled_classifier
    with pytest.raises(InputError, match=r"Unknown layer 'blocks\.9'.*Close matches: .*blocks\."):
        layer_activations(classifier, photos["cat"], layers=["blocks.9"])
    with pytest.raises(InputError, match=r"Channel 1280 is out of range: layer 'bn2' has 1280 channels \(0–1279\)"):
        top_activating(classifier, photos, layer="bn2", channel=1280)
    with pytest.raises(InputError, match=r"Channel\(s\) \[5000\] out of range: layer 'bn2' has 1280 channels"):
        ablate(classifier, photos["cat"], layer="bn2", channels=[3, 5000])
    with pytest.raises(InputError, match="Channel -1 is out of range"):
        visualize_channel(classifier, layer="blocks.3", channel=-1, steps=1, size=32)
    with pytest.raises(InputError, match="mode must be 'zero' or 'mean'"):
        ablate(classifier, photos["cat"], layer="bn2", channels=[3], mode="noise")
    with pytest.raises(InputError, match="Unknown layer 'bn3'"):
        cam_channel_importance(classifier, photos["cat"], layer="bn3")


# ------------------------------------------------------------------------------------ what a channel does
def test_top_activating_ranks_images_by_the_channel(bundled_classifier, photos):
    top = top_activating(bundled_classifier, photos, layer="blocks.5", channel=7, top_k=3, batch_size=4)
    expected = layer_activations(bundled_classifier, list(photos.values()), layers=["blocks.5"])["blocks.5"].maps[:, 7]
    np.testing.assert_allclose(top.all_scores, expected.amax((1, 2)).numpy(), rtol=1e-4, atol=1e-4)
    assert top.indices == np.argsort(-top.all_scores)[:3].tolist()
    assert top.names == [list(photos)[i] for i in top.indices]
    assert tuple(top.maps.shape) == (3, 224, 224) and tuple(top.pixels.shape) == (3, 3, 224, 224)
    fig = plots.top_activating_figure(top)
    assert sum(trace.type == "image" for trace in fig.data) == 3


def test_feature_visualization_excites_the_channel_beyond_photos(bundled_classifier):
    result = visualize_channel(bundled_classifier, layer="blocks.4", channel=20, steps=32, size=96, seed=1)
    assert result.objective_site == "blocks.4"
    assert result.image.shape == (3, 96, 96) and 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.activation > 2 * result.photo_activation > 0
    assert result.activation > result.photo_max and result.activation > result.noise_activation
    assert result.history[-8:].mean() > result.history[:4].mean()
    assert len(plots.feature_visualization_figure(result).data) == 2 + len(result.check.exemplars.indices)  # type: ignore[union-attr]


def test_feature_visualization_switches_on_a_channel_dead_for_grey(bundled_classifier):
    """bn2 ends in ReLU6; channel 285 is zero for a grey start image, so only its pre-activation has a gradient."""
    result = visualize_channel(bundled_classifier, layer="bn2", channel=285, steps=24, size=96)
    assert result.objective_site == "input of bn2.act (pre-activation)"
    assert result.activation > max(result.photo_max, result.noise_activation)


# ------------------------------------------------------------------------------------------- interventions
def test_importance_adds_up_to_the_logit(bundled_classifier, photo_list):
    """EfficientNet's head is average pooling + Linear, so gradient × activation sums exactly to logit − bias."""
    importance = cam_channel_importance(bundled_classifier, photo_list)
    assert importance.layer == "bn2" and importance.per_image.shape == (len(photo_list), 1280)
    logits = bundled_classifier.logits(photo_list).detach()
    bias = bundled_classifier.module.classifier.bias.detach()
    targets = torch.tensor(importance.targets)
    assert targets.tolist() == logits.argmax(1).tolist()
    expected = logits[torch.arange(len(targets)), targets] - bias[targets]
    np.testing.assert_allclose(importance.per_image.sum(1), expected.numpy(), rtol=1e-4, atol=1e-3)
    assert len(plots.channel_importance_figure(importance, k=10).data[0].x) == 10


def test_ablation_is_exact_where_the_answer_is_known(bundled_classifier, photos):
    classifier = bundled_classifier
    everything = ablate(classifier, photos["coffee"], layer="bn2")  # all channels zero → logits = bias
    bias_probs = torch.softmax(classifier.module.classifier.bias.detach(), 0)
    assert everything.channels is None
    assert everything.prob_after[0] == pytest.approx(float(bias_probs[everything.targets[0]]), rel=1e-4)
    assert everything.top_before[0][0].label == "espresso"
    # mean-replacing channels of the last map before average pooling changes nothing
    unchanged = ablate(classifier, photos["coffee"], layer="bn2", channels=list(range(0, 1280, 3)), mode="mean")
    assert abs(unchanged.mean_drop) < 1e-5 and unchanged.changed == [False]
    fig = plots.intervention_figure(everything)
    assert [trace.name for trace in fig.data] == ["before", "after (zero)"]


def test_cam_channels_matter_far_more_than_random_channels(bundled_classifier, photo_list):
    """Zeroing the 10 channels the CAM layer relies on most (per photo, for its predicted class) must cost
    far more probability than zeroing 10 random channels (3 draws per photo)."""
    classifier, k = bundled_classifier, 10
    importance = cam_channel_importance(classifier, photo_list)
    rng = np.random.default_rng(0)
    cam_drops, random_drops = [], []
    for i, image in enumerate(photo_list):
        cam_drops.append(ablate(classifier, image, layer=importance.layer, channels=importance.top(k, image=i)).drop[0])
        for _ in range(3):
            channels = rng.choice(1280, size=k, replace=False).tolist()
            result = ablate(classifier, image, layer=importance.layer, channels=channels, target=importance.targets[i])
            random_drops.append(result.drop[0])
    cam, random = float(np.mean(cam_drops)), float(np.mean(random_drops))
    assert cam > 0.15, f"CAM channels dropped the predicted class by only {cam:.3f}"
    assert cam > random + 0.1 and cam > 5 * abs(random), (cam, random)
    assert min(cam_drops) > max(random_drops)


def test_ablation_works_on_transformer_tokens(models, photos):
    vit = models["vit_tiny_patch16_224"]
    result = ablate(vit, photos["cat"], layer="blocks.11.norm1", mode="mean", top_k=3)
    assert len(result.top_after[0]) == 3 and np.isfinite(result.prob_after).all()
    importance = cam_channel_importance(vit, photos["cat"])
    assert importance.layer == "blocks.11.norm1" and importance.per_image.shape == (1, 192)


# ---------------------------------------------------------------------------------------------- embeddings
def test_trained_cnn_embedding_separates_digits_better_than_pixels(digits, digits_cnn):
    """t-SNE: 0.953–0.969 vs 0.917–0.931 for pixels over 5 training seeds (benchmarks/inside.py), so a 0.015
    margin holds for any of them; the 2-D PCA view is weaker (one seed in five falls below pixels)."""
    tsne = embed_dataset(digits_cnn, digits, method="tsne")  # a bare nn.Module is wrapped
    assert tsne.knn_accuracy > tsne.pixel_knn_accuracy + 0.015, (tsne.knn_accuracy, tsne.pixel_knn_accuracy)
    classifier = Classifier.from_module(digits_cnn, labels=digits.class_names, input_size=8, in_chans=1)
    pca = embed_dataset(classifier, digits)
    assert pca.layer == "input of 8" and pca.feature_dim == 64 and pca.pixel_dim == 64
    assert pca.coords.shape == (360, 2) and pca.coords.dtype == np.float32
    assert pca.knn_accuracy > pca.pixel_knn_accuracy, (pca.knn_accuracy, pca.pixel_knn_accuracy)
    assert all(0 < share < 1 for share in pca.explained_variance) and tsne.explained_variance is None
    fig = plots.embedding_figure(pca)
    assert len(fig.data) == 2 * len(digits.class_names)


def test_top_activating_searches_a_dataset(digits, digits_cnn):
    classifier = Classifier.from_module(digits_cnn, labels=digits.class_names, input_size=8, in_chans=1)
    top = top_activating(classifier, digits, layer="3", channel=5, top_k=4, score="mean", batch_size=100)
    assert len(top.all_scores) == len(digits.y_test) and top.indices == np.argsort(-top.all_scores)[:4].tolist()
    with torch.no_grad():
        expected = digits_cnn[:4](digits.x_test)[:, 5].mean((1, 2)).numpy()
    np.testing.assert_allclose(top.all_scores, expected, rtol=1e-5, atol=1e-5)
    first = top.indices[0]
    assert top.names[0] == f"digits test #{first} ({digits.class_names[int(digits.y_test[first])]})"


def test_importance_needs_no_trainable_weights(digits, digits_cnn):
    frozen = Classifier.from_module(digits_cnn, labels=digits.class_names, input_size=8, in_chans=1)
    for parameter in digits_cnn.parameters():
        parameter.requires_grad_(False)
    try:
        importance = cam_channel_importance(frozen, digits.x_test[:4], layer="3")
    finally:
        for parameter in digits_cnn.parameters():
            parameter.requires_grad_(True)
    assert importance.per_image.shape == (4, 32) and np.abs(importance.per_image).sum() > 0


def test_embedding_of_a_named_layer_and_bad_input(digits, digits_cnn):
    result = embed_dataset(digits_cnn, digits, layer="3", max_samples=200)  # 2nd conv's ReLU, averaged over positions
    assert result.layer == "3" and result.feature_dim == 32 and len(result.labels) == 200
    with pytest.raises(InputError, match="method must be one of pca, tsne"):
        embed_dataset(digits_cnn, digits, method="umap")
    with pytest.raises(InputError, match="needs an image Dataset"):
        embed_dataset(digits_cnn, explainer.load_dataset("moons"))


# ----------------------------------------------------------------------------------------- convolution step
@pytest.mark.parametrize(
    "options",
    [
        dict(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1),
        dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=2, dilation=2, groups=2),
        dict(in_channels=2, out_channels=3, kernel_size=(3, 5), padding="same", dilation=(1, 2)),
        dict(in_channels=3, out_channels=3, kernel_size=3, stride=(1, 2), padding=1, padding_mode="reflect", groups=3),
    ],
)
def test_conv_step_adds_up_to_the_layer_output(options):
    torch.manual_seed(0)
    conv = nn.Conv2d(**options)
    x = torch.randn(2, options["in_channels"], 11, 12)
    out = conv(x).detach()
    last_row, last_col = out.shape[-2] - 1, out.shape[-1] - 1
    for channel, row, col in [(0, 0, 0), (out.shape[1] - 1, last_row, last_col), (1, last_row // 2, 1)]:
        step = conv_step(conv, x, out_channel=channel, row=row, col=col, image=1)
        assert step.matches, (options, channel, row, col)
        assert step.actual == pytest.approx(float(out[1, channel, row, col]), abs=1e-6)
        assert step.result == pytest.approx(float((step.patch * step.kernel).sum()) + step.bias, abs=1e-5)
        assert step.patch.shape == step.kernel.shape == (options["in_channels"] // options.get("groups", 1),
                                                         *conv.kernel_size)


def test_conv_step_inside_a_classifier(bundled_classifier, photos):
    step = conv_step(bundled_classifier, photos["cat"], out_channel=5, row=0, col=111)  # the stem, at the padded right border
    assert step.layer == "conv_stem" and step.matches and step.left == 221 and step.top == -1
    depthwise = conv_step(bundled_classifier, photos["cat"], out_channel=40, row=27, col=3, layer="blocks.1.0.conv_dw")
    assert depthwise.matches and depthwise.in_channels == [40] and depthwise.groups == 96
    fig = plots.conv_step_figure(step)
    assert len(fig.data) == 12 and "✓ matches" in fig.layout.title.text
    with pytest.raises(InputError, match=r"Position \(112, 0\) is outside the 112×112 output"):
        conv_step(bundled_classifier, photos["cat"], out_channel=0, row=112, col=0)
    with pytest.raises(InputError, match="not a Conv2d"):
        conv_step(bundled_classifier, photos["cat"], out_channel=0, row=0, col=0, layer="bn1")
    with pytest.raises(InputError, match="out_channel 32 out of range"):
        conv_step(bundled_classifier, photos["cat"], out_channel=32, row=0, col=0)


def test_works_when_the_caller_is_in_inference_mode(photos):
    """A fresh model (its layers not yet probed) used inside torch.inference_mode(), as apps often do."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    classifier = Classifier.from_module(net, input_size=32)
    with torch.inference_mode():
        importance = cam_channel_importance(classifier, photos["cat"])
        visualization = visualize_channel(classifier, layer="3", channel=1, steps=3, size=32)
        top = top_activating(classifier, photos, layer="3", channel=0, top_k=2)
    assert importance.layer == "3" and np.abs(importance.per_image).sum() > 0
    assert visualization.objective_site == "input of 3 (pre-activation)" and len(top.indices) == 2


# --------------------------------------------------------------------------------------------------- CLI
def test_cli_anatomy_and_ablate(tmp_path, photos, capsys):
    import json

    from explainer.cli import main

    assert main(["anatomy", "--model", "resnet18", "--random-weights", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total_params"] == sum(row["params"] for row in payload["layers"]) == 11_689_512
    image = tmp_path / "cat.png"
    photos["cat"].save(image)
    assert main(["ablate", str(image), "--device", "cpu", "--ablate", "10", "--random-draws", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["layer"] == "bn2" and len(payload["channels"]) == 10 and payload["target"] == "Egyptian cat"
    assert payload["drop"] > 0.1 > max(payload["random_channel_drops"])
    assert main(["ablate", str(image), "--layer", "bn2", "--channels", "1,x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


# ------------------------------------------------------------------------ estimate, progress and budget
def test_top_activating_prints_an_estimate_and_a_bar_and_nothing_without_progress(digits, digits_cnn, capsys):
    classifier = Classifier.from_module(digits_cnn, labels=digits.class_names, input_size=8, in_chans=1)
    shown = top_activating(classifier, digits, layer="3", channel=5, top_k=4)
    err = capsys.readouterr().err
    assert "estimate: ≈" in err and "364 forward (to 3) pass(es) (360 image(s) searched + the top 4" in err
    assert "top_activating: 100%" in err and "364/364" in err
    silent = top_activating(classifier, digits, layer="3", channel=5, top_k=4, progress=False)
    assert capsys.readouterr().err == "" and silent.indices == shown.indices
    with pytest.raises(InputError, match=r"This top_activating call is estimated at ≈ .*over the time budget.*"
                                         r"fewer images \(360 now\)"):
        top_activating(classifier, digits, layer="3", channel=5, budget_seconds=1e-9)
    assert "%" not in capsys.readouterr().err  # refused before the bar


def test_embed_dataset_prints_an_estimate_and_a_bar_and_nothing_without_progress(digits, digits_cnn, capsys):
    shown = embed_dataset(digits_cnn, digits, max_samples=200, batch_size=100)
    err = capsys.readouterr().err
    assert "estimate: ≈" in err and "200 forward pass(es)" in err and "embed_dataset: 100%" in err and "4/4" in err
    silent = embed_dataset(digits_cnn, digits, max_samples=200, batch_size=100, progress=False)
    assert capsys.readouterr().err == "" and np.array_equal(silent.coords, shown.coords)
    with pytest.raises(InputError, match=r"This embed_dataset call is estimated at ≈ .*max_samples=200 now"):
        embed_dataset(digits_cnn, digits, max_samples=200, budget_seconds=1e-9)


def test_visualize_channel_prints_an_estimate_and_a_bar_and_refuses_over_budget(known_answer_cnn, capsys):
    classifier, _ = known_answer_cnn
    module = classifier.module
    before = {k: v.clone() for k, v in module.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    shown = visualize_channel(classifier, layer="4", channel=3, steps=8, size=32)
    err = capsys.readouterr().err
    # 8 steps; forwards: the picture, 4 noise images, 6 photos, and the check's 54 photo crops and the picture
    assert "estimate: ≈" in err and "8 optimization steps ×" in err and "66 forward(s) to 4" in err
    assert "visualize_channel: 100%" in err and "8/8" in err
    silent = visualize_channel(classifier, layer="4", channel=3, steps=8, size=32, progress=False)
    assert capsys.readouterr().err == "" and torch.equal(silent.image, shown.image)
    with pytest.raises(InputError, match=r"This visualize_channel call is estimated at ≈ .*fewer steps \(steps=500 now\)"):
        visualize_channel(classifier, layer="4", channel=3, steps=500, size=32, budget_seconds=1e-3)
    assert "%" not in capsys.readouterr().err
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert all((g is None and p.grad is None) or (g is not None and p.grad is not None and torch.equal(g, p.grad))
               for g, p in zip(grads, module.parameters()))  # the weights got no gradient
    assert not any(m._forward_hooks for m in module.modules())
