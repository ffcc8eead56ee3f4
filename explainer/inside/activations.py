"""Capture what named layers output with forward hooks: feature maps, statistics, strongest channels."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer.errors import InputError
from explainer.models import Prediction
from explainer.models.anatomy import layer_units
from explainer.models.layers import feature_layers

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: How many layers `activations` captures when none are named.
DEFAULT_LAYER_COUNT = 6


class _StopForward(Exception):
    """Raised inside a hook once every wanted output is captured, to skip the rest of the network."""


@contextmanager
def forward_hooks(classifier: Classifier, hooks: dict[str, Callable], *, pre: bool = False) -> Iterator[None]:
    """Register ``hooks`` (layer name → forward hook, or forward pre-hook with ``pre=True``) for the
    duration of a ``with`` block.

    Unknown names raise InputError listing close matches before anything is registered; every
    hook is removed on exit, also when the forward pass raises.
    """
    modules = {name: classifier.get_layer(name) for name in hooks}
    handles = []
    try:
        for name, hook in hooks.items():
            register = modules[name].register_forward_pre_hook if pre else modules[name].register_forward_hook
            handles.append(register(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def capture(
    classifier: Classifier,
    inputs: torch.Tensor,
    names: Sequence[str],
    *,
    grad: bool = False,
    layer_inputs: bool = False,
) -> dict[str, torch.Tensor]:
    """Outputs (or, with ``layer_inputs=True``, inputs) of the layers ``names`` for normalized ``inputs``;
    the forward pass stops as soon as all are captured.

    Each layer's first call is captured. With ``grad=True`` the tensors stay in the autograd graph
    (for optimizing an input); otherwise they are detached copies.
    """
    wanted = list(dict.fromkeys(names))
    captured: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable:
        def hook(_module: nn.Module, args: tuple, output: object = None) -> None:
            if name in captured:
                return
            tensor = first_tensor(args if layer_inputs else output, name)
            captured[name] = tensor if grad else tensor.detach().clone()
            if len(captured) == len(wanted):
                raise _StopForward

        return hook

    with forward_hooks(classifier, {name: record(name) for name in wanted}, pre=layer_inputs):
        try:
            with torch.set_grad_enabled(grad):
                classifier.module(inputs)
        except _StopForward:
            pass
    missing = [name for name in wanted if name not in captured]
    if missing:
        raise InputError(f"Layer(s) {', '.join(missing)} of {classifier.name} did not run in the forward pass.")
    return captured


def first_tensor(output: object, name: str) -> torch.Tensor:
    """The tensor a layer returned (the first one when it returns a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InputError(f"Layer {name!r} does not output a tensor (got {type(output).__name__}); choose another layer.")


def as_maps(classifier: Classifier, name: str, output: torch.Tensor) -> torch.Tensor:
    """A captured output as channel maps ``(N, C, H, W)``: ViT tokens become their patch grid
    (class tokens dropped), vectors ``(N, D)`` become ``(N, D, 1, 1)``."""
    layers = feature_layers(classifier)
    if name in layers:
        return layers[name].to_grid(output)
    if output.ndim == 2:
        return output[:, :, None, None]
    if output.ndim == 4:
        return output
    raise InputError(
        f"Layer {name!r} outputs shape {tuple(output.shape)}, which is neither a spatial map, a token grid nor "
        f"a vector; choose a feature layer such as: {', '.join(list(layers)[-6:])}."
    )


def check_channel(maps_channels: int, channel: int, layer: str) -> None:
    """Raise InputError unless ``channel`` indexes one of the layer's ``maps_channels`` channels."""
    if not isinstance(channel, (int, np.integer)) or isinstance(channel, bool) or not 0 <= channel < maps_channels:
        raise InputError(
            f"Channel {channel!r} is out of range: layer {layer!r} has {maps_channels} channels "
            f"(0–{maps_channels - 1})."
        )


def default_layers(classifier: Classifier, count: int = DEFAULT_LAYER_COUNT) -> list[str]:
    """A handful of top-level blocks spread through the network whose output is a map or token grid,
    always ending with the last one."""
    features = feature_layers(classifier)
    candidates = [name for name, _ in layer_units(classifier.module) if name in features]
    if not candidates:
        candidates = list(features)
    if len(candidates) <= count:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, count).round().astype(int)
    return [candidates[i] for i in dict.fromkeys(picks.tolist())]


@dataclass
class LayerActivation:
    """One layer's activations for a batch: ``maps`` ``(N, C, H, W)`` float32 on the CPU (ViT tokens as
    their patch grid), summary statistics, and channels ranked by mean activation (strongest first)."""

    name: str
    kind: str  # "spatial", "tokens" or "vector"
    output_shape: tuple[int, ...]
    maps: torch.Tensor
    mean: float
    std: float
    sparsity: float  # fraction of values <= 0
    max: float
    min: float
    channel_means: np.ndarray  # (C,), averaged over images and positions
    ranking: np.ndarray = field(repr=False)  # channel indices, strongest mean first

    def top_channels(self, k: int = 16, image: int | None = None) -> list[int]:
        """The ``k`` channels with the highest mean activation over the batch, or for one ``image``."""
        if image is None:
            return [int(c) for c in self.ranking[:k]]
        if not 0 <= image < self.maps.shape[0]:
            raise InputError(f"image {image} out of range: {self.maps.shape[0]} image(s) were captured.")
        means = self.maps[image].mean(dim=(1, 2)).numpy()
        return [int(c) for c in np.argsort(-means, kind="stable")[:k]]


@dataclass
class Activations:
    """What several layers output for a batch of images, with how it was measured."""

    model: str
    layers: dict[str, LayerActivation]
    pixels: torch.Tensor  # (N, C, H, W) in [0, 1], CPU
    predictions: list[list[Prediction]]  # top 3 classes per image
    seconds: float
    device: str
    method: str = "forward hooks"

    def __getitem__(self, name: str) -> LayerActivation:
        if name not in self.layers:
            raise InputError(f"Layer {name!r} was not captured; captured: {', '.join(self.layers)}.")
        return self.layers[name]

    def stats_table(self) -> pd.DataFrame:
        """One row per layer: shape, channels, mean, std, sparsity, max."""
        return pd.DataFrame([
            {"layer": a.name, "kind": a.kind, "output_shape": " × ".join(map(str, a.output_shape)),
             "channels": int(a.maps.shape[1]), "mean": a.mean, "std": a.std, "sparsity": a.sparsity, "max": a.max}
            for a in self.layers.values()
        ])


def activations(
    classifier: Classifier, images: ImageBatch, layers: Sequence[str] | str | None = None
) -> Activations:
    """Capture the outputs of ``layers`` (default: a handful of blocks spread through the network)
    for ``images`` with forward hooks, which are removed afterwards (also on error)."""
    started = time.perf_counter()
    names = [layers] if isinstance(layers, str) else list(layers) if layers is not None else default_layers(classifier)
    if not names:
        raise InputError("No layers given; pass layer names (see classifier.layer_names()) or None for defaults.")
    for name in names:
        classifier.get_layer(name)  # unknown names: InputError with close matches
    pixels = classifier.to_pixels(images)
    inputs = classifier.normalize(pixels).to(classifier.device)
    outputs: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            outputs.setdefault(name, first_tensor(output, name).detach().clone())

        return hook

    with torch.inference_mode(), forward_hooks(classifier, {name: record(name) for name in names}):
        logits = classifier.module(inputs)
    missing = [name for name in names if name not in outputs]
    if missing:
        raise InputError(f"Layer(s) {', '.join(missing)} of {classifier.name} did not run in the forward pass.")
    captured = {name: _summarize(classifier, name, outputs[name]) for name in names}
    top = torch.softmax(logits.float(), dim=1).topk(min(3, logits.shape[1]), dim=1)
    predictions = [
        [Prediction(classifier.labels[int(i)], int(i), float(p)) for p, i in zip(values, indices)]
        for values, indices in zip(top.values.cpu(), top.indices.cpu())
    ]
    return Activations(
        model=classifier.name,
        layers=captured,
        pixels=pixels,
        predictions=predictions,
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
    )


def _summarize(classifier: Classifier, name: str, output: torch.Tensor) -> LayerActivation:
    maps = as_maps(classifier, name, output.float())
    features = feature_layers(classifier)
    kind = features[name].kind if name in features else ("vector" if output.ndim == 2 else "spatial")
    channel_means = maps.mean(dim=(0, 2, 3)).cpu().numpy()
    return LayerActivation(
        name=name,
        kind=kind,
        output_shape=tuple(int(s) for s in output.shape[1:]),
        maps=maps.cpu().contiguous(),
        mean=float(maps.mean()),
        std=float(maps.std()),
        sparsity=float((maps <= 0).float().mean()),
        max=float(maps.max()),
        min=float(maps.min()),
        channel_means=channel_means,
        ranking=np.argsort(-channel_means, kind="stable"),
    )
