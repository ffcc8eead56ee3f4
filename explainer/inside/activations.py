"""Capture what named layers output with forward hooks: feature maps, statistics, strongest channels."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer.compat import deprecated_alias, legacy_positional
from explainer.errors import InputError
from explainer.guards import eval_mode, hook_guard
from explainer.jsonable import JsonResult
from explainer.models import Prediction
from explainer.models.anatomy import layer_units
from explainer.models.coerce import as_classifier
from explainer.models.layers import feature_layers
from explainer.models.predictions import top_k

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: How many layers `layer_activations` captures when none are named.
DEFAULT_LAYER_COUNT = 6
#: Top classes reported per image by `layer_activations`.
PREDICTIONS_PER_IMAGE = 3


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
    with hook_guard(classifier.module):
        for name, hook in hooks.items():
            register = modules[name].register_forward_pre_hook if pre else modules[name].register_forward_hook
            register(hook)
        yield


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
    (for optimizing an input); otherwise they are detached copies. The model runs in eval mode; its
    ``training`` flags and hooks are as they were afterwards.
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

    with eval_mode(classifier.module), forward_hooks(classifier, {name: record(name) for name in wanted}, pre=layer_inputs):
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
class LayerActivation(JsonResult):
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

    _not_in_dict = ("maps",)

    @legacy_positional("image", renamed={"k": "top_k"})
    def top_channels(self, top_k: int = 16, *, image: int | None = None) -> list[int]:
        """The ``top_k`` channels with the highest mean activation over the batch, or for one ``image``."""
        if image is None:
            return [int(c) for c in self.ranking[:top_k]]
        if not 0 <= image < self.maps.shape[0]:
            raise InputError(f"image {image} out of range: {self.maps.shape[0]} image(s) were captured.")
        means = self.maps[image].mean(dim=(1, 2)).numpy()
        return [int(c) for c in np.argsort(-means, kind="stable")[:top_k]]


@dataclass
class Activations(JsonResult):
    """What several layers output for a batch of images, with how it was measured.

    ``to_dict()`` leaves out the maps and pixels (the statistics, rankings and predictions stay).
    """

    model_name: str
    layers: dict[str, LayerActivation]
    pixels: torch.Tensor  # (N, C, H, W) in [0, 1], CPU
    predictions: list[list[Prediction]]  # top PREDICTIONS_PER_IMAGE classes per image
    seconds: float
    device: str

    _not_in_dict = ("pixels", "layers")
    model = deprecated_alias("model", "model_name")

    def to_dict(self) -> dict:
        """JSON-ready: model_name, seconds, device, predictions and each layer without its maps."""
        return {**super().to_dict(), "layers": {name: layer.to_dict() for name, layer in self.layers.items()}}

    def summary(self) -> pd.DataFrame:
        """The headline numbers: :meth:`stats_table`, one row per layer."""
        return self.stats_table()

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


@legacy_positional("layers")
def layer_activations(
    classifier: Classifier, images: ImageBatch, *, layers: Sequence[str] | str | None = None
) -> Activations:
    """Capture the outputs of ``layers`` (default: a handful of blocks spread through the network)
    for ``images`` with forward hooks, in eval mode; hooks and ``training`` flags are restored afterwards
    (also on error)."""
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="layer_activations")
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

    with torch.inference_mode(), eval_mode(classifier.module), forward_hooks(
        classifier, {name: record(name) for name in names}
    ):
        logits = classifier.module(inputs)
    missing = [name for name in names if name not in outputs]
    if missing:
        raise InputError(f"Layer(s) {', '.join(missing)} of {classifier.name} did not run in the forward pass.")
    return Activations(
        model_name=classifier.name,
        layers={name: _summarize(classifier, name, outputs[name]) for name in names},
        pixels=pixels,
        predictions=top_k(torch.softmax(logits.float(), dim=1), classifier.labels, PREDICTIONS_PER_IMAGE),
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


def activations(classifier: Classifier, images: ImageBatch, layers: Sequence[str] | str | None = None) -> Activations:
    """Deprecated name of :func:`layer_activations` (``explainer.activations`` shadowed the submodule)."""
    warnings.warn("explainer.activations(...) is now explainer.layer_activations(classifier, images, layers=...); "
                  "the old name goes away in 0.5.", DeprecationWarning, stacklevel=2)
    return layer_activations(classifier, images, layers=layers)
