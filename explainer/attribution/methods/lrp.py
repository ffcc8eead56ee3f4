"""Layer-wise Relevance Propagation (Bach et al. 2015) computed by Zennit (Anders et al. 2021).

The relevance of the target logit is propagated back to the pixels with a Zennit composite –
``EpsilonPlusFlat`` by default (flat rule in the first layer, z⁺ in the other convolutions,
ε in the dense layers; Montavon et al. 2019's recommendation for CNNs) – after the canonizers
the architecture needs: batch norms merged into the preceding convolution, and for torchvision
ResNets the skip connections made explicit ``Sum`` modules so relevance splits between the
branches instead of being counted twice. The output relevance is ``one_hot(target) · logit``,
so the input relevance sums to (about) the logit; ``convergence_delta`` reports
``Σ relevance − logit`` per image (bias terms and the ε stabilizer absorb a little).

Supported: torchvision ``ResNet`` (``ResNetCanonizer``), timm's ``ResNet`` with plain blocks (no
squeeze-excitation, anti-aliasing or drop-block: resnet18/34/50 and kin; batch norms merged and the same
explicit ``Sum``, :func:`TimmResNetCanonizer`), torchvision ``VGG`` (``VGGCanonizer``) and sequential
networks of convolutions, dense layers, batch norms, pools and elementwise activations
(``explainer.build_cnn``; ``SequentialMergeBatchNorm``). Any other architecture – timm's
EfficientNet with ``BatchNormAct2d`` and residual additions, ConvNeXt, ViT – is attempted with
``SequentialMergeBatchNorm`` and kept only if it passes the conservation check (relative error of
``Σ relevance`` against the logit at most :data:`CONSERVATION_RTOL` on every image); otherwise
the call is refused with a message naming what is supported. LRP runs on explain's private copy
of the model (Zennit's canonizers rewrite weights and forwards while they are attached).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from explainer.attribution.registry import Job, MethodSpec, Output, Param, register_method
from explainer.errors import InputError

#: Zennit composites offered by ``composite=`` (Zennit's registry names).
COMPOSITES = ("epsilon_plus_flat", "epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1",
              "epsilon_alpha2_beta1_flat")
#: An architecture outside the supported list must conserve relevance this well (relative to |logit|).
CONSERVATION_RTOL = 0.05
#: Leaf modules a plain sequential network may consist of.
_PLAIN_LEAVES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Dropout, nn.Dropout2d, nn.Identity,
    nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardswish,
)
SUPPORTED = ("torchvision ResNet and VGG, timm ResNets with plain blocks, and sequential CNNs/MLPs such as "
             "explainer.build_cnn")


def _plain_timm_resnet(module: nn.Module) -> bool:
    """A timm ResNet whose blocks are conv–BN–act with a residual sum only (what the canonizer rewrites)."""
    from timm.models.resnet import BasicBlock, Bottleneck
    from timm.models.resnet import ResNet as TimmResNet

    if not isinstance(module, TimmResNet):
        return False
    blocks = [m for m in module.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    return bool(blocks) and all(
        block.se is None and isinstance(block.aa, nn.Identity) and isinstance(block.drop_block, nn.Identity)
        for block in blocks
    )


def architecture(module: nn.Module) -> str:
    """``"resnet"``, ``"timm_resnet"``, ``"vgg"``, ``"sequential"`` (plain layers in order) or ``"other"``."""
    from torchvision.models import VGG, ResNet

    if isinstance(module, ResNet):
        return "resnet"
    if _plain_timm_resnet(module):
        return "timm_resnet"
    if isinstance(module, VGG):
        return "vgg"
    if isinstance(module, nn.Sequential):
        leaves = [m for m in module.modules() if not list(m.children())]
        containers = [m for m in module.modules() if list(m.children())]
        if all(isinstance(m, nn.Sequential) for m in containers) and all(
            isinstance(m, _PLAIN_LEAVES) or _is_surrogate(m) for m in leaves
        ):
            return "sequential"
    return "other"


def _is_surrogate(module: nn.Module) -> bool:
    """explain's private copy presents some activations as ``nn.ReLU`` instances (still elementwise)."""
    return isinstance(module, nn.ReLU)


def canonizers(kind: str) -> list[Any]:
    """The Zennit canonizers for an architecture kind."""
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    if kind == "resnet":
        return [ResNetCanonizer()]
    if kind == "timm_resnet":
        return [SequentialMergeBatchNorm(), TimmResNetCanonizer()]
    if kind == "vgg":
        return [VGGCanonizer()]
    return [SequentialMergeBatchNorm()]


def _timm_basic_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """timm's BasicBlock forward with the residual addition as an explicit ``Sum`` (relevance splits, not doubles)."""
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
    if self.drop_path is not None:
        out = self.drop_path(out)
    return self.act2(self.canonizer_sum(torch.stack([shortcut, out], dim=-1)))


def _timm_bottleneck_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """timm's Bottleneck forward, likewise."""
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.act1(self.bn1(self.conv1(x)))
    out = self.bn3(self.conv3(self.act2(self.bn2(self.conv2(out)))))
    if self.drop_path is not None:
        out = self.drop_path(out)
    return self.act3(self.canonizer_sum(torch.stack([shortcut, out], dim=-1)))


def _timm_block_attributes(_name: str, module: nn.Module) -> dict[str, Any] | None:
    from timm.models.resnet import BasicBlock, Bottleneck
    from zennit.layer import Sum

    if isinstance(module, BasicBlock):
        return {"forward": _timm_basic_forward.__get__(module), "canonizer_sum": Sum()}
    if isinstance(module, Bottleneck):
        return {"forward": _timm_bottleneck_forward.__get__(module), "canonizer_sum": Sum()}
    return None


def TimmResNetCanonizer() -> Any:  # noqa: N802 - builds a Zennit canonizer, named like one
    """Zennit canonizer for timm ResNet blocks: their residual sum as a ``Sum`` module (zennit imported on use)."""
    from zennit.canonizers import AttributeCanonizer

    return AttributeCanonizer(_timm_block_attributes)


def make_composite(name: str, kind: str, job: Job) -> Any:
    """The Zennit composite ``name`` with the canonizers for ``kind`` (input bounds for the box rule)."""
    from zennit.composites import COMPOSITES as ZENNIT_COMPOSITES

    cls = ZENNIT_COMPOSITES[name]
    if name == "epsilon_gamma_box":
        low = ((0.0 - job.mean) / job.std).expand_as(job.inputs)
        high = ((1.0 - job.mean) / job.std).expand_as(job.inputs)
        return cls(low=low, high=high, canonizers=canonizers(kind))
    return cls(canonizers=canonizers(kind))


def relevance(module: nn.Module, inputs: torch.Tensor, targets: list[int], composite: Any) -> tuple[torch.Tensor,
                                                                                                    torch.Tensor]:
    """Zennit's input relevance for ``one_hot(target) · logit`` and the target logits ``(n,)``."""
    inputs = inputs.detach().requires_grad_(True)
    with composite.context(module) as modified:
        logits = modified(inputs)
        index = torch.as_tensor(targets, device=logits.device).view(-1, 1)
        one_hot = torch.zeros_like(logits).scatter_(1, index, 1.0)
        (grad,) = torch.autograd.grad(logits, inputs, grad_outputs=one_hot * logits.detach())
    return grad, logits.detach().gather(1, index).squeeze(1)


def run_lrp(job: Job) -> Output:
    """LRP with the chosen composite; refuses architectures whose relevance is not conserved."""
    kind = architecture(job.module)
    composite = make_composite(job.params["composite"], kind, job)
    attributions, logits = relevance(job.module, job.inputs, job.targets, composite)
    delta = attributions.flatten(1).sum(dim=1) - logits
    error = (delta.abs() / logits.abs().clamp_min(1e-6)).max().item()
    if kind == "other" and not error <= CONSERVATION_RTOL:
        raise InputError(
            f"lrp supports {SUPPORTED}; on this architecture ({type(job.module).__name__}) the relevance is not "
            f"conserved (Σ relevance is off the logit by {error:.0%}, tolerance {CONSERVATION_RTOL:.0%}), so the "
            "map would not be LRP. Use integrated_gradients or deeplift (also complete), or gradcam."
        )
    return Output(attributions, {"architecture": kind, "conservation_error": round(error, 6)}, delta)


register_method(MethodSpec(
    name="lrp", title="LRP", kind="propagation", signed=True, private_copy=True,
    description=(
        "Layer-wise Relevance Propagation: the logit redistributed layer by layer back to the pixels with "
        "conservation rules (Bach et al. 2015), computed by Zennit. Supports torchvision ResNet/VGG, "
        "timm ResNets and sequential CNNs; other architectures must pass a conservation check."
    ),
    params=(
        Param("composite", str, "epsilon_plus_flat", choices=COMPOSITES,
              help="Zennit rule composite (EpsilonPlusFlat: flat first layer, z+ convolutions, epsilon dense)"),
    ),
    runner=run_lrp,
))
