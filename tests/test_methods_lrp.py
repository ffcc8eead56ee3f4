"""LRP equals Zennit called directly with the same composite and canonizers; conservation is checked."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

import explainer

zennit = pytest.importorskip("zennit")
from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.composites import EpsilonAlpha2Beta1, EpsilonPlusFlat  # noqa: E402
from zennit.torchvision import ResNetCanonizer, VGGCanonizer  # noqa: E402


def _classifier(model: nn.Module, size: int, name: str) -> explainer.Classifier:
    return explainer.Classifier.from_module(model, input_size=size, name=name)


def _models() -> dict[str, tuple[explainer.Classifier, type]]:
    torch.manual_seed(0)
    return {
        "resnet18": (_classifier(torchvision.models.resnet18(weights=None), 64, "resnet18"), ResNetCanonizer),
        "vgg11": (_classifier(torchvision.models.vgg11(weights=None), 64, "vgg11"), VGGCanonizer),
        "build_cnn": (_classifier(explainer.build_cnn((3, 16, 16), 10, channels=(8, 16)), 16, "cnn"),
                      SequentialMergeBatchNorm),
    }


MODELS = _models()


def zennit_directly(model: nn.Module, inputs: torch.Tensor, targets: list[int], composite) -> torch.Tensor:
    """The documented Zennit recipe on a copy of the model, output relevance one_hot · logit."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False  # type: ignore[assignment]
    with torch.no_grad():
        logits = model(inputs)
    one_hot = torch.zeros_like(logits).scatter_(1, torch.tensor(targets).view(-1, 1), 1.0)
    with Gradient(model=model, composite=composite) as attributor:
        _output, relevance = attributor(inputs.clone().requires_grad_(True), one_hot * logits)
    return relevance


@pytest.mark.parametrize(("name", "composite", "zennit_class"), [
    ("resnet18", "epsilon_plus_flat", EpsilonPlusFlat), ("vgg11", "epsilon_plus_flat", EpsilonPlusFlat),
    ("build_cnn", "epsilon_plus_flat", EpsilonPlusFlat), ("resnet18", "epsilon_alpha2_beta1", EpsilonAlpha2Beta1),
])
def test_lrp_equals_zennit(name, composite, zennit_class, one_torch_thread):
    classifier, canonizer = MODELS[name]
    pixels = torch.rand(2, 3, *classifier.input_size, generator=torch.Generator().manual_seed(1))
    explanation = explainer.explain(classifier, pixels, "lrp", composite=composite)
    expected = zennit_directly(classifier.module, explanation.inputs, explanation.targets,
                               zennit_class(canonizers=[canonizer()]))
    torch.testing.assert_close(explanation.attributions, expected, atol=1e-5, rtol=1e-4)
    assert explanation.convergence_delta is not None and explanation.convergence_delta.shape == (2,)


def test_relevance_is_conserved_on_supported_models(one_torch_thread):
    """Σ relevance = logit + convergence_delta; on VGG (no skip, BN-free) within 0.1 %."""
    classifier, _ = MODELS["vgg11"]
    explanation = explainer.explain(classifier, torch.rand(2, 3, 64, 64), "lrp")
    sums = explanation.attributions.flatten(1).sum(1)
    with torch.no_grad():
        logits = classifier.module(explanation.inputs).gather(1, torch.tensor(explanation.targets).view(-1, 1))[:, 0]
    torch.testing.assert_close(sums, logits + explanation.convergence_delta, atol=1e-5, rtol=1e-4)
    assert explanation.params["conservation_error"] <= 1e-3


class Plain(nn.Module):
    """Not an nn.Sequential (so not on the supported list), but plain layers without biases: conserves."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def test_other_architectures_pass_the_conservation_check_or_are_refused(bundled_classifier, one_torch_thread):
    torch.manual_seed(0)
    plain = _classifier(Plain(), 12, "plain")
    explanation = explainer.explain(plain, torch.rand(2, 3, 12, 12), "lrp")
    assert explanation.params["architecture"] == "other"
    assert explanation.params["conservation_error"] <= 0.05
    with pytest.raises(explainer.InputError, match="torchvision ResNet and VGG.*integrated_gradients"):
        explainer.explain(bundled_classifier, torch.rand(1, 3, 224, 224), "lrp")


def test_a_timm_resnet_gets_the_same_relevance_as_torchvisions(one_torch_thread):
    """timm's resnet18 with torchvision resnet18's weights computes the same function; with its blocks' residual
    sums made explicit its LRP map must equal the torchvision path's (ResNetCanonizer), and a torchvision
    checkpoint loaded with arch="resnet18" (built as timm's model) gets LRP too."""
    import io

    import timm

    tv_classifier, _ = MODELS["resnet18"]
    timm_net = timm.create_model("resnet18", pretrained=False).eval()
    timm_net.load_state_dict(tv_classifier.module.state_dict())
    timm_classifier = _classifier(timm_net, 64, "timm resnet18")
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ours = explainer.explain(timm_classifier, pixels, "lrp", target=7)
    reference = explainer.explain(tv_classifier, pixels, "lrp", target=7)
    assert ours.params["architecture"] == "timm_resnet" and reference.params["architecture"] == "resnet"
    torch.testing.assert_close(ours.attributions, reference.attributions, atol=1e-7, rtol=1e-4)
    buffer = io.BytesIO()
    torch.save(tv_classifier.module.state_dict(), buffer)
    loaded = explainer.load_model(buffer.getvalue(), arch="resnet18", device="cpu")
    assert explainer.explain(loaded, pixels[:1], "lrp").params["conservation_error"] <= 0.05
