"""load_model / Classifier: offline-first loading, safe checkpoints, predictions, clear errors."""

from __future__ import annotations

import os
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import explainer
from explainer import Classifier, InputError, ModelLoadError, load_model

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_bundled_model_recognises_real_photos(bundled_classifier: Classifier, photos: dict) -> None:
    predictions = bundled_classifier.predict([photos["cat"], photos["coffee"], photos["camera"]], top_k=3)
    assert predictions[0][0].label in CAT_CLASSES
    assert predictions[1][0].label in {"espresso", "cup"}
    assert predictions[1][0].probability > 0.5
    assert predictions[2][0].label == "tripod"
    assert all(len(row) == 3 for row in predictions)
    probabilities = [p.probability for p in predictions[0]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_bundled_model_metadata(bundled_classifier: Classifier) -> None:
    assert bundled_classifier.num_classes == 1000
    assert bundled_classifier.input_size == (224, 224)
    assert bundled_classifier.labels[285] == "Egyptian cat"
    assert len(set(bundled_classifier.labels)) == 1000
    assert "bn2" in bundled_classifier.layer_names()


@pytest.mark.parametrize("source", ["resnet18", "timm:convnext_atto", "torchvision:resnet18"])
def test_missing_hub_weights_fail_fast_offline(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        load_model(source, device="cpu")
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert source.split(":")[-1] in message
    assert "pretrained=False" in message
    assert "offline" in message


def test_random_weights_need_no_network() -> None:
    classifier = load_model("resnet18", pretrained=False, device="cpu")
    assert classifier.num_classes == 1000 and not classifier.pretrained
    torchvision_model = load_model("torchvision:resnet18", pretrained=False, device="cpu", num_classes=10)
    assert torchvision_model.num_classes == 10


def test_unknown_model_name_suggests_close_ones() -> None:
    with pytest.raises(ModelLoadError, match="Unknown model 'resnet181'.*resnet18"):
        load_model("resnet181", device="cpu")


def _small_timm_state() -> dict[str, torch.Tensor]:
    classifier = load_model("resnet10t", pretrained=False, num_classes=5, device="cpu")
    return {k: v.contiguous() for k, v in classifier.module.state_dict().items()}


def test_safetensors_checkpoint_round_trip(tmp_path) -> None:
    state = _small_timm_state()
    path = tmp_path / "weights.safetensors"
    save_file(state, str(path))
    classifier = load_model(path, arch="resnet10t", device="cpu")
    assert classifier.num_classes == 5  # read from the checkpoint's head
    for key, value in classifier.module.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_weights_only_state_dict(tmp_path) -> None:
    state = _small_timm_state()
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    classifier = load_model(path, arch="resnet10t", labels=list("abcde"), device="cpu")
    assert classifier.labels == list("abcde")
    assert torch.equal(classifier.module.state_dict()["fc.weight"], state["fc.weight"])


class _Payload:
    """Unpickling this object would create a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_never_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weights": _Payload(str(marker))}, path)
    with pytest.raises(ModelLoadError, match="Refused to load evil.pth.*execute arbitrary code.*state_dict"):
        load_model(path, arch="resnet10t", device="cpu")
    assert not marker.exists()


def test_whole_pickled_model_is_refused(tmp_path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), path)
    with pytest.raises(ModelLoadError, match="pickled Python objects.*torch.nn.modules.container.Sequential"):
        load_model(path, arch="resnet10t", device="cpu")


def test_checkpoint_needs_architecture(tmp_path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(_small_timm_state(), str(path))
    with pytest.raises(ModelLoadError, match="arch='resnet18'"):
        load_model(path, device="cpu")


def test_checkpoint_for_wrong_architecture(tmp_path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(_small_timm_state(), str(path))
    with pytest.raises(ModelLoadError, match="does not match architecture 'convnext_atto'"):
        load_model(path, arch="convnext_atto", device="cpu")


def test_corrupt_safetensors(tmp_path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        load_model(path, arch="resnet10t", device="cpu")


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_from_module_infers_classes_and_predicts() -> None:
    classifier = Classifier.from_module(_tiny_cnn(), input_size=8, in_chans=1)
    assert classifier.labels == ["class 0", "class 1", "class 2"]
    predictions = classifier.predict(torch.rand(4, 1, 8, 8), top_k=2)
    assert len(predictions) == 4 and len(predictions[0]) == 2
    total = sum(p.probability for p in classifier.predict(torch.rand(1, 1, 8, 8), top_k=3)[0])
    assert total == pytest.approx(1.0, abs=1e-5)


def test_from_module_takes_shape_channels_and_labels_from_a_dataset() -> None:
    digits = explainer.load_dataset("digits")
    net = explainer.build_model("cnn", digits, seed=0)
    classifier = Classifier.from_module(net, dataset=digits, name="digits cnn")
    assert (classifier.input_size, len(classifier.mean), classifier.labels) == ((8, 8), 1, list(digits.class_names))
    assert classifier.predict(digits.x_test[:2], top_k=1)[0][0].label in digits.class_names
    assert Classifier.from_module(net, dataset=digits, labels=[f"d{i}" for i in range(10)]).labels[0] == "d0"
    with pytest.raises(InputError, match="needs an image dataset"):
        Classifier.from_module(net, dataset=explainer.load_dataset("moons"))


def test_from_module_rejects_non_modules() -> None:
    with pytest.raises(InputError, match="needs a torch.nn.Module"):
        Classifier.from_module("not a model")  # type: ignore[arg-type]


def test_target_resolution_and_errors(bundled_classifier: Classifier) -> None:
    assert bundled_classifier.class_index("Egyptian cat") == 285
    assert bundled_classifier.class_index("egyptian CAT") == 285
    assert bundled_classifier.class_index(967) == 967
    with pytest.raises(InputError, match=r"out of range.*valid indices 0–999"):
        bundled_classifier.class_index(1000)
    with pytest.raises(InputError, match="Unknown class label 'egyptain cat'.*Egyptian cat"):
        bundled_classifier.class_index("egyptain cat")


def test_unknown_layer_lists_candidates(bundled_classifier: Classifier) -> None:
    with pytest.raises(InputError, match="Unknown layer 'bn3'.*bn2"):
        bundled_classifier.get_layer("bn3")


def test_tensor_input_validation(bundled_classifier: Classifier) -> None:
    with pytest.raises(InputError, match="expects 3 channel"):
        bundled_classifier.to_pixels(torch.rand(2, 1, 32, 32))
    with pytest.raises(InputError, match="channels-last"):
        bundled_classifier.to_pixels(torch.rand(2, 32, 32, 3))
    with pytest.raises(InputError, match=r"values in \[0, 1\]"):
        bundled_classifier.to_pixels(torch.rand(1, 3, 32, 32) * 255)
    with pytest.raises(InputError, match=r"\(C, H, W\) or \(N, C, H, W\)"):
        bundled_classifier.to_pixels(torch.rand(32, 32))
    with pytest.raises(InputError, match="top_k must be at least 1"):
        bundled_classifier.predict(torch.rand(1, 3, 224, 224), top_k=0)


def test_pixels_resize_and_normalize_round_trip(bundled_classifier: Classifier, photos: dict) -> None:
    pixels = bundled_classifier.to_pixels([photos["cat"], photos["coffee"]])
    assert pixels.shape == (2, 3, 224, 224)
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0
    inputs = bundled_classifier.preprocess([photos["cat"], photos["coffee"]])
    torch.testing.assert_close(bundled_classifier.denormalize(inputs), pixels, atol=1e-5, rtol=0)
    resized = bundled_classifier.to_pixels(torch.rand(1, 3, 100, 150))
    assert resized.shape == (1, 3, 224, 224)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_gpu() -> None:
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        load_model(device="cuda")


def test_model_sources_listing() -> None:
    rows = explainer.list_model_sources()
    bundled = rows[0]
    assert bundled["source"] == "efficientnet_lite0" and bundled["offline"] is True
    assert {row["kind"] for row in rows} >= {"bundled", "timm", "torchvision", "checkpoint"}


def test_checkpoint_bytes_load_without_a_file_and_fingerprints_follow_the_weights() -> None:
    import io

    from explainer.models.sources import weights_fingerprint

    original = load_model("test_resnet", pretrained=False, num_classes=3)
    buffer = io.BytesIO()
    torch.save(original.module.state_dict(), buffer)
    loaded = load_model(buffer.getvalue(), arch="test_resnet")
    assert loaded.source == "uploaded bytes" and loaded.num_classes == 3
    assert weights_fingerprint(loaded) == weights_fingerprint(original.module)
    with torch.no_grad():
        next(loaded.module.parameters()).add_(1e-3)
    assert weights_fingerprint(loaded) != weights_fingerprint(original)


def test_checkpoint_bytes_need_an_architecture() -> None:
    import io

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    with pytest.raises(ModelLoadError, match="holds weights only"):
        load_model(buffer.getvalue())
