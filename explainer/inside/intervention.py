"""Intervene inside the network: switch channels off and watch the prediction change; find the
channels the Grad-CAM layer relies on."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer.compat import deprecated_alias, legacy_positional
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.inside.activations import first_tensor, forward_hooks
from explainer.jsonable import JsonResult, headline
from explainer.models import Prediction
from explainer.models.coerce import as_classifier
from explainer.models.layers import feature_layers, find_cam_layer
from explainer.models.predictions import Target, resolve_targets
from explainer.models.predictions import top_k as top_k_predictions

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

def _channel_dim(classifier: Classifier, layer: str, output: torch.Tensor) -> int:
    """Which dimension of ``layer``'s output holds the channels (the last one for transformer tokens)."""
    info = feature_layers(classifier).get(layer)
    return output.ndim - 1 if info is not None and info.kind == "tokens" else 1


def _check_channels(channels: Sequence[int] | None, total: int, layer: str) -> list[int] | None:
    if channels is None:
        return None
    chosen = [int(c) for c in channels]
    if not chosen:
        raise InputError("channels is empty; pass channel indices, or None to ablate the whole layer.")
    bad = [c for c in chosen if not 0 <= c < total]
    if bad:
        raise InputError(f"Channel(s) {bad[:5]} out of range: layer {layer!r} has {total} channels (0–{total - 1}).")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"channels contains duplicates: {chosen}.")
    return chosen


@dataclass
class Intervention(JsonResult):
    """The prediction before and after replacing channels of ``layer`` (``channels=None``: all of them)."""

    model_name: str
    layer: str
    channels: list[int] | None
    layer_channels: int  # how many channels the layer has
    mode: str  # "zero" or "mean"
    targets: list[int]
    target_labels: list[str]
    prob_before: np.ndarray  # (N,) target probability with the network intact
    prob_after: np.ndarray  # (N,) with the channels replaced
    top_before: list[list[Prediction]]
    top_after: list[list[Prediction]]
    table: pd.DataFrame = field(repr=False)  # image, label, index, before, after for the top classes of either pass
    seconds: float = 0.0
    device: str = ""

    model = deprecated_alias("model", "model_name")

    @headline
    def method(self) -> str:
        """The replacement strategy: ``"zero"`` or ``"mean"`` (the same as :attr:`mode`)."""
        return self.mode

    @headline
    def drop(self) -> np.ndarray:
        """Target probability lost per image (before − after)."""
        return self.prob_before - self.prob_after

    @headline
    def mean_drop(self) -> float:
        """Target probability lost, averaged over the images."""
        return float(self.drop.mean())

    @headline
    def changed(self) -> list[bool]:
        """Whether each image's top-1 class changed."""
        return [b[0].index != a[0].index for b, a in zip(self.top_before, self.top_after)]

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per image: target, probability before and after, drop, top-1 changed."""
        return pd.DataFrame({
            "image": range(len(self.targets)), "target": self.target_labels, "before": self.prob_before,
            "after": self.prob_after, "drop": self.drop, "top1_changed": self.changed,
        })


@legacy_positional("layer", "channels")
def ablate(
    classifier: Classifier,
    images: ImageBatch,
    *,
    layer: str,
    channels: Sequence[int] | None = None,
    mode: str = "zero",
    top_k: int = 5,
    target: Target = None,
) -> Intervention:
    """Replace ``channels`` of ``layer`` (all when None) by zero (``mode="zero"``) or by their mean over
    the batch and positions (``"mean"``), with a forward hook, and compare the prediction before and after.

    ``target`` (default: each image's predicted class) is the class whose probability is tracked. The
    model runs in eval mode; its hooks and ``training`` flags are as they were afterwards.
    """
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="ablate")
    if mode not in ("zero", "mean"):
        raise InputError(f"mode must be 'zero' or 'mean', got {mode!r}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}.")
    classifier.get_layer(layer)
    inputs = classifier.preprocess(images)
    with eval_mode(classifier.module), torch.inference_mode():
        before, after, reference, dim, chosen = _ablated_passes(classifier, inputs, layer, channels, mode)
    targets = resolve_targets(classifier, target, before)
    rows = torch.arange(len(targets))
    top_before = top_k_predictions(before, classifier.labels, top_k)
    top_after = top_k_predictions(after, classifier.labels, top_k)
    return Intervention(
        model_name=classifier.name,
        layer=layer,
        channels=chosen,
        layer_channels=int(reference.shape[dim]),
        mode=mode,
        targets=targets,
        target_labels=[classifier.labels[t] for t in targets],
        prob_before=before[rows, targets].numpy(),
        prob_after=after[rows, targets].numpy(),
        top_before=top_before,
        top_after=top_after,
        table=_before_after_table(classifier, targets, before, after, top_before, top_after),
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
    )


def _ablated_passes(
    classifier: Classifier, inputs: torch.Tensor, layer: str, channels: Sequence[int] | None, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, list[int] | None]:
    """Probabilities (CPU) with the network intact and with the channels replaced, the layer's clean
    output, its channel dimension and the checked channels."""
    clean: dict[str, torch.Tensor] = {}

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        clean.setdefault("output", first_tensor(output, layer).detach().clone())

    with forward_hooks(classifier, {layer: record}):
        probs_before = torch.softmax(classifier.module(inputs).float(), dim=1)
    reference = clean["output"]
    dim = _channel_dim(classifier, layer, reference)
    chosen = _check_channels(channels, reference.shape[dim], layer)
    index = torch.arange(reference.shape[dim], device=reference.device) if chosen is None else \
        torch.tensor(chosen, device=reference.device)
    other_dims = [d for d in range(reference.ndim) if d != dim]
    replacement = reference.mean(dim=other_dims, keepdim=True) if mode == "mean" else torch.zeros_like(reference)

    def replace(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor:
        patched = first_tensor(output, layer).clone()
        patched.index_copy_(dim, index, replacement.expand_as(patched).index_select(dim, index))
        return patched

    with forward_hooks(classifier, {layer: replace}):
        probs_after = torch.softmax(classifier.module(inputs).float(), dim=1)
    return probs_before.cpu(), probs_after.cpu(), reference, dim, chosen


def _before_after_table(
    classifier: Classifier,
    targets: list[int],
    before: torch.Tensor,
    after: torch.Tensor,
    top_before: list[list[Prediction]],
    top_after: list[list[Prediction]],
) -> pd.DataFrame:
    """One row per image and class among its target and the top classes of either pass."""
    rows = []
    for i, (tb, ta) in enumerate(zip(top_before, top_after)):
        for idx in dict.fromkeys([targets[i], *(p.index for p in tb), *(p.index for p in ta)]):
            rows.append({"image": i, "label": classifier.labels[idx], "index": idx,
                         "before": float(before[i, idx]), "after": float(after[i, idx])})
    return pd.DataFrame(rows)


@dataclass
class ChannelImportance(JsonResult):
    """How much each channel of ``layer`` contributes to the target logit, per image and on average.

    ``per_image[n, c]`` = Σ over positions of gradient × activation = Grad-CAM weight (mean gradient)
    × summed activation when the head is linear after average pooling: the first-order change of the
    target logit if the channel were zeroed.
    """

    model_name: str
    layer: str
    targets: list[int]
    per_image: np.ndarray  # (N, C)
    gradcam_weights: np.ndarray  # (N, C) mean gradient over positions (Grad-CAM's alpha)
    mean_activation: np.ndarray  # (N, C)
    method: str = "gradient_x_activation"  # Σ over positions of gradient × activation
    seconds: float = 0.0
    device: str = ""

    model = deprecated_alias("model", "model_name")

    @headline
    def scores(self) -> np.ndarray:
        """(C,) importance averaged over images."""
        return self.per_image.mean(0)

    @legacy_positional("image", renamed={"k": "top_k"})
    def top(self, top_k: int = 10, *, image: int | None = None) -> list[int]:
        """The ``top_k`` most important channels, for one image or averaged over the batch."""
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise InputError(f"top_k must be a positive integer (how many channels), got {top_k!r}.")
        values = self.scores if image is None else self.per_image[image]
        return [int(c) for c in np.argsort(-values, kind="stable")[:top_k]]

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per channel (most important first): mean importance, mean
        Grad-CAM weight and mean activation over the images."""
        order = np.argsort(-self.scores, kind="stable")
        return pd.DataFrame({
            "channel": order, "importance": self.scores[order],
            "gradcam_weight": self.gradcam_weights.mean(0)[order],
            "mean_activation": self.mean_activation.mean(0)[order],
        })


@legacy_positional("layer", "target")
def cam_channel_importance(
    classifier: Classifier, images: ImageBatch, *, layer: str | None = None, target: Target = None
) -> ChannelImportance:
    """Rank the channels of the Grad-CAM layer (default: ``find_cam_layer``) by gradient × activation
    for the target class (default: each image's prediction). Runs in eval mode; gradients go to the
    layer's output only, so the model's ``.grad`` stays as it was."""
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="cam_channel_importance")
    layer = find_cam_layer(classifier).name if layer is None else layer
    classifier.get_layer(layer)
    features = feature_layers(classifier)
    if layer not in features:
        raise InputError(
            f"Layer {layer!r} does not output a spatial map or token grid; choose one such as "
            f"{find_cam_layer(classifier).name!r}."
        )
    info = features[layer]
    captured: dict[str, torch.Tensor] = {}

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        captured.setdefault("output", first_tensor(output, layer))

    with torch.inference_mode(False), torch.enable_grad(), eval_mode(classifier.module), \
            forward_hooks(classifier, {layer: record}):
        inputs = classifier.preprocess(images).requires_grad_(True)  # a graph exists even if all weights are frozen
        logits = classifier.module(inputs)
        targets = resolve_targets(classifier, target, logits)
        selected = logits[torch.arange(len(targets), device=logits.device), torch.tensor(targets, device=logits.device)]
        (gradient,) = torch.autograd.grad(selected.sum(), captured["output"])
    activation = info.to_grid(captured["output"].detach()).float()
    gradient = info.to_grid(gradient).float()
    return ChannelImportance(
        model_name=classifier.name,
        layer=layer,
        targets=targets,
        per_image=(gradient * activation).sum((2, 3)).cpu().numpy(),
        gradcam_weights=gradient.mean((2, 3)).cpu().numpy(),
        mean_activation=activation.mean((2, 3)).cpu().numpy(),
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
    )
