"""The CAM family beyond Grad-CAM: Score-CAM, LayerCAM, XGrad-CAM, HiResCAM and EigenCAM.

All five use the CAM layer ``explain`` picks for ``gradcam`` (:func:`explainer.models.layers.find_cam_layer`,
or ``layer=``), so CNN maps and ViT token grids work alike: the layer's output is read through
:meth:`LayerInfo.to_grid` (class and distillation tokens dropped). Gradients are taken with
respect to the layer's output only (``torch.autograd.grad``), so no weight gradient is computed
or stored and the user's ``.grad`` stays as it was. Formulas, with ``A`` the layer's map
``(C, h, w)`` and ``g = ∂ logit_target / ∂ A``:

* LayerCAM (Jiang et al. 2021): ``ReLU(Σ_k ReLU(g_k) ⊙ A_k)``.
* XGrad-CAM (Fu et al. 2020): ``w_k = Σ_ij g_kij A_kij / Σ_ij A_kij`` (0 where a channel sums to 0),
  ``ReLU(Σ_k w_k A_k)``.
* HiResCAM (Draelos & Carin 2020): ``ReLU(Σ_k g_k ⊙ A_k)``.
* EigenCAM (Muhammad & Yeasin 2020): the projection of the position-centred activations
  ``(hw, C)`` on their first right singular vector, oriented so it correlates positively with the
  channel sum (SVD leaves the sign arbitrary), then ReLU. No gradients, no class: the same map
  for every target.
* Score-CAM (Wang et al. 2020): each channel, upsampled and min-max scaled to [0, 1], masks the
  input; its weight is the target's softmax probability on that masked input (``weights="probability"``,
  the paper's reference code) or, as pytorch-grad-cam does, the softmax over channels of the
  masked inputs' target logits (``weights="channel_softmax"``). Map: ``ReLU(Σ_k w_k A_k)``.
  The masked inputs of all images and channels go through the model in passes of
  ``job.samples_per_pass`` (the memory budget), built one pass at a time. A channel that is
  constant on the image masks everything (its scaled map is 0): those share one evaluation of
  the all-zero input instead of one pass each, and never divide by zero.

Every map is upsampled bilinearly (half-pixel centres) to the input's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from explainer.attribution.methods._layer import as_map, layer_output, target_scores, upsample
from explainer.attribution.registry import Job, MethodSpec, Output, Param, register_method
from explainer.errors import InputError

#: Score-CAM's cost is one evaluation per channel of the CAM layer, which a declaration cannot see;
#: this is the estimate when ``max_channels`` is not given (ResNet-18 layer4: 512; EfficientNet-Lite0: 1280).
SCORECAM_TYPICAL_CHANNELS = 512
SCORECAM_WEIGHTS = ("probability", "channel_softmax")


# ------------------------------------------------------------------------------ helpers
def activations_and_gradients(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    """The CAM layer's map ``A`` and ``∂ Σ target logits / ∂ A``, both ``(n, C, h, w)``, detached."""
    info = _layer(job)
    with layer_output(job.module, info) as captured:
        logits = job.module(job.inputs)
    output = captured[0]
    (grad,) = torch.autograd.grad(target_scores(logits, job.targets).sum(), output)
    return as_map(info, output.detach()).float(), as_map(info, grad).float()


def _layer(job: Job) -> Any:
    if job.layer is None:
        raise InputError("CAM methods need a feature layer; pass layer= or use a model with a spatial/token layer.")
    return job.layer


def _activations(job: Job) -> torch.Tensor:
    """The CAM layer's map ``(n, C, h, w)`` from one forward pass (no gradients)."""
    info = _layer(job)
    with layer_output(job.module, info) as captured:
        job.module(job.inputs)
    return as_map(info, captured[0].detach()).float()


def _finish(cam: torch.Tensor, job: Job) -> Output:
    """``ReLU(cam)`` ``(n, h, w)`` or ``(n, 1, h, w)`` upsampled to the input size."""
    cam = F.relu(cam if cam.ndim == 4 else cam.unsqueeze(1))
    return Output(upsample(cam, tuple(job.inputs.shape[-2:])))


# ------------------------------------------------------------------------ gradient CAMs
def run_layercam(job: Job) -> Output:
    """LayerCAM: positive gradients weight each position of each channel."""
    acts, grads = activations_and_gradients(job)
    return _finish((F.relu(grads) * acts).sum(dim=1, keepdim=True), job)


def run_xgradcam(job: Job) -> Output:
    """XGrad-CAM: channel weights are the activation-weighted mean of the gradient."""
    acts, grads = activations_and_gradients(job)
    totals = acts.sum(dim=(2, 3), keepdim=True)
    safe = torch.where(totals != 0, totals, torch.ones_like(totals))
    weights = torch.where(totals != 0, (grads * acts).sum(dim=(2, 3), keepdim=True) / safe, torch.zeros_like(totals))
    return _finish((weights * acts).sum(dim=1, keepdim=True), job)


def run_hirescam(job: Job) -> Output:
    """HiResCAM: the element-wise product of gradient and activation, summed over channels."""
    acts, grads = activations_and_gradients(job)
    return _finish((grads * acts).sum(dim=1, keepdim=True), job)


def eigen_projection(acts: torch.Tensor) -> torch.Tensor:
    """First principal component of each image's position-centred activations, ``(n, h, w)``, oriented.

    The sign is chosen so the projection correlates positively with the channel sum of the map.
    """
    n, channels, height, width = acts.shape
    rows = acts.reshape(n, channels, height * width).transpose(1, 2).double()  # (n, hw, C)
    rows = torch.nan_to_num(rows - rows.mean(dim=1, keepdim=True))
    _u, _s, vh = torch.linalg.svd(rows, full_matrices=False)
    projection = (rows @ vh[:, 0, :].unsqueeze(-1)).squeeze(-1)  # (n, hw)
    reference = acts.sum(dim=1).reshape(n, -1).double()
    reference = reference - reference.mean(dim=1, keepdim=True)
    sign = torch.where((projection * reference).sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(projection)
    return (projection * sign).reshape(n, height, width).float()


def run_eigencam(job: Job) -> Output:
    """EigenCAM: the CAM layer's first principal component (class-agnostic)."""
    return _finish(eigen_projection(_activations(job)), job)


# ---------------------------------------------------------------------------- Score-CAM
def run_scorecam(job: Job) -> Output:
    """Score-CAM, batched over (image, channel) pairs in passes of ``job.samples_per_pass``."""
    p = job.params
    acts = _activations(job)  # (n, C, h, w); the hook is gone before the masked passes
    n, channels = acts.shape[:2]
    flat = acts.flatten(2)
    live = flat.amax(dim=2) > flat.amin(dim=2)  # constant channels mask everything out
    selected = _chosen_channels(acts, live, p["max_channels"])
    targets = torch.as_tensor(job.targets, device=acts.device)
    scores = torch.full((n, channels), float("nan"), device=acts.device)
    zero_logits = job.module(torch.zeros_like(job.inputs[:1])).float()  # every constant channel's masked input
    zero_score = _to_scores(zero_logits.expand(n, -1), targets, p["weights"])
    scores[~live] = zero_score.view(-1, 1).expand(n, channels)[~live]
    pairs = (selected & live).nonzero()
    size = tuple(job.inputs.shape[-2:])
    step = max(1, job.samples_per_pass)
    for start in range(0, len(pairs), step):
        image, channel = pairs[start : start + step].unbind(1)
        masks = upsample(acts[image, channel].unsqueeze(1), size)  # (B, 1, H, W)
        low = masks.amin(dim=(2, 3), keepdim=True)
        span = masks.amax(dim=(2, 3), keepdim=True) - low
        masks = torch.where(span > 0, (masks - low) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)
        masked = (job.inputs[image] * masks).contiguous(memory_format=torch.channels_last)  # ~10 % faster convs
        scores[image, channel] = _masked_scores(job, masked, targets[image], p["weights"])
    weights = _scorecam_weights(scores, selected, p["weights"])
    cam = (weights.view(n, channels, 1, 1) * acts).sum(dim=1, keepdim=True)
    return Output(upsample(F.relu(cam), size), {"channels_used": int(selected.sum(dim=1).max()),
                                                "masked_passes": -(-len(pairs) // step)})


def _chosen_channels(acts: torch.Tensor, live: torch.Tensor, max_channels: int | None) -> torch.Tensor:
    """Channels that get a weight: all, or each image's ``max_channels`` with the largest mean activation."""
    if max_channels is None or max_channels >= acts.shape[1]:
        return torch.ones_like(live)
    means = acts.mean(dim=(2, 3)).masked_fill(~live, float("-inf"))
    chosen = torch.zeros_like(live)
    chosen.scatter_(1, means.topk(max_channels, dim=1).indices, True)
    return chosen


def _masked_scores(job: Job, inputs: torch.Tensor, targets: torch.Tensor, weights: str) -> torch.Tensor:
    """Target probability (or logit, for channel_softmax) of each masked input, ``(B,)``."""
    return _to_scores(job.module(inputs).float(), targets, weights)


def _to_scores(logits: torch.Tensor, targets: torch.Tensor, weights: str) -> torch.Tensor:
    if weights == "probability":
        logits = logits.softmax(dim=1)
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def _scorecam_weights(scores: torch.Tensor, selected: torch.Tensor, weights: str) -> torch.Tensor:
    if weights == "probability":
        return torch.where(selected, scores, torch.zeros_like(scores))
    return scores.masked_fill(~selected, float("-inf")).softmax(dim=1)


def _scorecam_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return 1 + 1 + int(params["max_channels"] or SCORECAM_TYPICAL_CHANNELS)


# ------------------------------------------------------------------------- declarations
register_method(MethodSpec(
    name="scorecam", title="Score-CAM", kind="cam", signed=False, forward_only=True,
    description=(
        "Gradient-free CAM: each feature map of the CAM layer masks the image, and the class probability "
        "of the masked image weights that map (Wang et al. 2020). One model evaluation per channel, batched."
    ),
    params=(
        Param("weights", str, "probability", choices=SCORECAM_WEIGHTS,
              help="probability: target softmax probability per masked image (the paper's code); "
                   "channel_softmax: softmax over channels of the target logits (pytorch-grad-cam)"),
        Param("max_channels", int, None, low=1, optional=True,
              help="use only each image's channels with the largest mean activation (None: all, as the paper)"),
    ),
    cost=_scorecam_cost, runner=run_scorecam, smoke_params={"max_channels": 8},
))
register_method(MethodSpec(
    name="layercam", title="LayerCAM", kind="cam", signed=False, runner=run_layercam,
    description="Each position of each feature map weighted by its positive gradient, summed over channels "
                "(Jiang et al. 2021); finer than Grad-CAM and usable on earlier layers.",
))
register_method(MethodSpec(
    name="xgradcam", title="XGrad-CAM", kind="cam", signed=False, runner=run_xgradcam,
    description="Grad-CAM with channel weights from the activation-weighted gradient, chosen to satisfy "
                "sensitivity and conservation axioms (Fu et al. 2020).",
))
register_method(MethodSpec(
    name="hirescam", title="HiResCAM", kind="cam", signed=False, runner=run_hirescam,
    description="Gradient times activation summed over channels, without Grad-CAM's spatial averaging of the "
                "gradient; shows the locations the score actually used (Draelos & Carin 2020).",
))
register_method(MethodSpec(
    name="eigencam", title="EigenCAM", kind="cam", signed=False, forward_only=True, runner=run_eigencam,
    description="The first principal component of the CAM layer's feature maps (Muhammad & Yeasin 2020): "
                "no gradients and no class – the same map whatever the target.",
))
