"""Class activation maps (Grad-CAM, guided Grad-CAM, Grad-CAM++): declarations and runners.

Importing this module registers them. CAM methods get ``job.layer`` (found automatically or
given as ``explain(..., layer=...)``); token layers of vision transformers are routed through a
grid (:func:`explainer.attribution.methods._layer.cam_layer`) so every runner sees an
``(N, C, h, w)`` map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from explainer.attribution.methods._layer import as_map, cam_layer, layer_output, upsample
from explainer.attribution.methods.captum import captum_attr
from explainer.attribution.registry import Job, MethodSpec, Output, register_method


def _run_gradcam(job: Job) -> Output:
    assert job.layer is not None
    with cam_layer(job.module, job.layer) as layer:
        cam = captum_attr().LayerGradCam(job.module, layer).attribute(
            job.inputs, target=job.targets, relu_attributions=True
        )
    return Output(upsample(cam, tuple(job.inputs.shape[-2:])))


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
    inputs = job.inputs.detach().requires_grad_(True)  # a graph even when the weights are frozen
    with layer_output(job.module, job.layer) as captured:  # later in-place ops cannot modify the captured map
        logits = job.module(inputs)
    output = captured[0]
    index = torch.as_tensor(job.targets, device=logits.device).view(-1, 1)
    (grads,) = torch.autograd.grad(logits.gather(1, index).sum(), output)
    activations, grads = as_map(job.layer, output), as_map(job.layer, grads)
    grads2 = grads.pow(2)
    denominator = 2 * grads2 + activations.sum(dim=(2, 3), keepdim=True) * grads2 * grads
    alpha = grads2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    return Output(upsample(cam.detach(), tuple(job.inputs.shape[-2:])))


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
