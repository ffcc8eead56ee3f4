"""Class activation maps (Grad-CAM, guided Grad-CAM, Grad-CAM++): declarations, runners and the CAM-layer plumbing.

Importing this module registers them. CAM methods get ``job.layer`` (found automatically or
given as ``explain(..., layer=...)``); token layers of vision transformers are routed through a
grid so every runner sees an ``(N, C, h, w)`` map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from explainer.attribution.captum_methods import captum_attr
from explainer.attribution.registry import Job, MethodSpec, Output, register_method

if TYPE_CHECKING:
    from explainer.models.layers import LayerInfo


def _run_gradcam(job: Job) -> Output:
    assert job.layer is not None
    with cam_layer(job.module, job.layer) as layer:
        cam = captum_attr().LayerGradCam(job.module, layer).attribute(
            job.inputs, target=job.targets, relu_attributions=True
        )
    return Output(upsample(cam, job.inputs))


def _run_guided_gradcam(job: Job) -> Output:
    assert job.layer is not None
    with cam_layer(job.module, job.layer) as layer:
        attributions = captum_attr().GuidedGradCam(job.module, layer).attribute(
            job.inputs, target=job.targets, interpolate_mode="bilinear"
        )
    return Output(attributions)


def _run_gradcam_plus_plus(job: Job) -> Output:
    """Grad-CAM++ (Chattopadhyay et al. 2018) with the closed form of their exponential score.

    With g = ∂score/∂A: α = g² / (2g² + Σ_ab A_ab · g³), w_k = Σ_ij α_kij · ReLU(g_kij),
    map = ReLU(Σ_k w_k A_k).
    """
    assert job.layer is not None
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        captured.append(output)
        return output.clone()  # later in-place ops must not modify the captured map

    inputs = job.inputs.detach().requires_grad_(True)  # a graph even when the weights are frozen
    with cam_layer(job.module, job.layer) as layer:
        handle = layer.register_forward_hook(capture)
        try:
            logits = job.module(inputs)
        finally:
            handle.remove()
    activations = captured[0]
    index = torch.as_tensor(job.targets, device=logits.device).view(-1, 1)
    (grads,) = torch.autograd.grad(logits.gather(1, index).sum(), activations)
    grads2 = grads.pow(2)
    denominator = 2 * grads2 + activations.sum(dim=(2, 3), keepdim=True) * grads2 * grads
    alpha = grads2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    return Output(upsample(cam.detach(), job.inputs))


@contextmanager
def cam_layer(module: nn.Module, info: LayerInfo) -> Iterator[nn.Module]:
    """The module whose output is the CAM layer's ``(N, C, h, w)`` map while the block runs.

    Spatial layers are used as they are. For token layers a forward hook routes the patch tokens
    through a standalone grid module (``LayerInfo.to_grid`` and back), so Captum and Grad-CAM++
    see a map; the hook is removed on exit, error or not.
    """
    layer = module.get_submodule(info.name)
    if info.kind == "spatial":
        yield layer
        return
    grid = nn.Identity()

    def through_grid(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        patches = grid(info.to_grid(output)).flatten(2).transpose(1, 2)
        return torch.cat([output[:, : info.prefix_tokens], patches], dim=1)

    handle = layer.register_forward_hook(through_grid)
    try:
        yield grid
    finally:
        handle.remove()


def upsample(cam: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """A low-resolution map ``(N, 1, h, w)`` resized bilinearly to the input's height and width."""
    return F.interpolate(cam, size=tuple(inputs.shape[-2:]), mode="bilinear", align_corners=False)


def _guided_gradcam_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return 2  # guided backprop + Grad-CAM


register_method(MethodSpec(
    name="gradcam", title="Grad-CAM", kind="cam", signed=False,
    description="Feature maps of a late layer weighted by their mean gradient, ReLU, upsampled to the image "
                "(Selvaraju et al. 2017).",
    runner=_run_gradcam,
))
register_method(MethodSpec(
    name="guided_gradcam", title="Guided Grad-CAM", kind="cam", signed=True,
    description="Guided backprop multiplied by the upsampled Grad-CAM map (Selvaraju et al. 2017).",
    cost=_guided_gradcam_cost,
    runner=_run_guided_gradcam,
    private_copy=True,
))
register_method(MethodSpec(
    name="gradcam_plus_plus", title="Grad-CAM++", kind="cam", signed=False,
    description="Grad-CAM with position-wise weights from higher-order gradients; covers several instances "
                "of a class better (Chattopadhyay et al. 2018).",
    runner=_run_gradcam_plus_plus,
))
