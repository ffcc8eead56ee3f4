"""Find and describe a model's feature layers: spatial CNN maps and ViT token grids."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from explainer.errors import InputError
from explainer.guards import user_state_guard
from explainer.rng import seeded_generator

if TYPE_CHECKING:
    from explainer.models import Classifier

#: Modules that never make a useful feature layer (they repeat their input or add noise).
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout1d, nn.AlphaDropout)


@dataclass(frozen=True)
class LayerInfo:
    """What one layer outputs: a spatial map ``(N, C, H, W)`` or tokens ``(N, T, D)`` forming a grid."""

    name: str
    kind: str  # "spatial" or "tokens"
    channels: int
    grid: tuple[int, int]
    prefix_tokens: int = 0  # class / distillation tokens before the patch tokens ("tokens" only)

    def to_grid(self, output: torch.Tensor) -> torch.Tensor:
        """The layer's output as a map ``(N, C, H, W)``; prefix tokens are dropped."""
        if self.kind == "spatial":
            return output
        patches = output[:, self.prefix_tokens :, :]
        return patches.transpose(1, 2).reshape(output.shape[0], self.channels, *self.grid)


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[str, LayerInfo]] = weakref.WeakKeyDictionary()
_DEFAULT: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()


def _describe(name: str, output: object, prefix_tokens: int, embed_dim: int | None) -> LayerInfo | None:
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        return None
    if output.ndim == 4 and output.shape[2] >= 2 and output.shape[3] >= 2:
        return LayerInfo(name, "spatial", int(output.shape[1]), (int(output.shape[2]), int(output.shape[3])))
    if output.ndim == 3 and embed_dim is not None and output.shape[2] == embed_dim:
        patches = int(output.shape[1]) - prefix_tokens
        side = math.isqrt(max(patches, 0))
        if side >= 2 and side * side == patches:
            return LayerInfo(name, "tokens", int(output.shape[2]), (side, side), prefix_tokens)
    return None


def feature_layers(classifier: Classifier) -> dict[str, LayerInfo]:
    """All layers whose output is a spatial map or a token grid, in execution order (cached)."""
    module = classifier.module
    if module in _CACHE:
        return _CACHE[module]
    _probe(classifier)
    return _CACHE[module]


def find_cam_layer(classifier: Classifier) -> LayerInfo:
    """The last feature layer whose map still influences the prediction (for Grad-CAM and friends).

    CNNs get their last spatial layer (e.g. timm EfficientNet ``bn2``, ResNet ``layer4``); vision
    transformers get the last token layer whose patch tokens receive gradient (``blocks.11.norm1``
    in ViT-Tiny – the final block's patch outputs do not reach the class token).
    """
    feature_layers(classifier)
    return _CACHE[classifier.module][_DEFAULT[classifier.module]]


def describe_layer(classifier: Classifier, name: str) -> LayerInfo:
    """LayerInfo for ``name``; unknown names or layers without a spatial/token output raise clearly."""
    classifier.get_layer(name)  # raises InputError listing candidates for unknown names
    layers = feature_layers(classifier)
    if name not in layers:
        candidates = list(layers)[-8:]
        raise InputError(
            f"Layer {name!r} of {classifier.name} does not output a spatial map (N, C, H, W) or a token grid; "
            f"choose a feature layer such as: {', '.join(candidates)}."
        )
    return layers[name]


def _probe(classifier: Classifier) -> None:
    """One forward and backward pass on a random input, recording each module's output and its gradient.

    Runs in eval mode under the user-state guards: parameters, buffers, every ``training`` flag, each
    ``.grad`` and the hooks are as they were afterwards. Gradients go to the recorded outputs only
    (``torch.autograd.grad``), never to the weights.
    """
    module = classifier.module
    prefix = int(getattr(module, "num_prefix_tokens", 0) or 0)
    embed_dim = getattr(module, "embed_dim", None) or getattr(module, "num_features", None)
    outputs, grads = _record_outputs(classifier)
    layers: dict[str, LayerInfo] = {}
    default: str | None = None
    for (name, output), grad in zip(outputs, grads):
        info = _describe(name, output, prefix, embed_dim)
        if info is None:
            continue
        layers[name] = info
        if grad is not None:
            relevant = grad if info.kind == "spatial" else grad[:, info.prefix_tokens :]
            if float(relevant.abs().sum()) > 0:
                default = name
    if default is None:
        raise InputError(
            f"{classifier.name} has no layer with a spatial (N, C, H, W) or token-grid output that affects the "
            "prediction, so CAM methods cannot be used; choose a gradient method such as 'saliency'."
        )
    _CACHE[module] = layers
    _DEFAULT[module] = default


def _record_outputs(classifier: Classifier) -> tuple[list[tuple[str, torch.Tensor]], list[torch.Tensor | None]]:
    """Each module's output for one seeded random input, and the top logit's gradient with respect to it."""
    module = classifier.module
    outputs: list[tuple[str, torch.Tensor]] = []

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                outputs.append((name, output))

        return hook

    # inference_mode(False): works when the caller is in inference mode
    with user_state_guard(module), torch.inference_mode(False), torch.enable_grad():
        for name, sub in module.named_modules():
            if name and not isinstance(sub, _PASS_THROUGH):
                sub.register_forward_hook(record(name))  # removed by the guard
        sample = torch.randn(1, classifier.in_chans, *classifier.input_size, generator=seeded_generator(0))
        logits = module(sample.to(classifier.device).requires_grad_(True))
        grads = torch.autograd.grad(
            logits[0, logits[0].argmax()], [output for _, output in outputs], allow_unused=True
        ) if outputs else ()
    return [(name, output.detach()) for name, output in outputs], list(grads)


def receptive_field(classifier: Classifier, layer: str, *, probes: int = 4) -> tuple[int, int]:
    """Height and width in input pixels of what one cell of spatial ``layer`` sees, measured: the bounding box of
    the input pixels its centre cell's gradient reaches, over ``probes`` seeded random inputs (union).

    Under the user-state guards (eval mode, hooks, ``.grad`` and flags as they were); gradients go to the input only.
    """
    info = describe_layer(classifier, layer)
    if info.kind != "spatial":
        raise InputError(f"layer {layer!r} outputs tokens, not a spatial map; receptive fields here are for "
                         "convolutional layers (a ViT token sees the whole image after the first attention block).")
    module = classifier.module
    captured: dict[str, torch.Tensor] = {}
    row, col = info.grid[0] // 2, info.grid[1] // 2
    with user_state_guard(module), torch.inference_mode(False), torch.enable_grad():
        classifier.get_layer(layer).register_forward_hook(
            lambda _m, _i, output: captured.__setitem__("out", output))  # removed by the guard
        sample = torch.randn(probes, classifier.in_chans, *classifier.input_size, generator=seeded_generator(0))
        sample = sample.to(classifier.device).requires_grad_(True)
        module(sample)
        grad = torch.autograd.grad(captured["out"][:, :, row, col].sum(), sample)[0]
    support = grad.abs().sum((0, 1)) > 0
    rows, cols = torch.nonzero(support.any(1)).flatten(), torch.nonzero(support.any(0)).flatten()
    if len(rows) == 0:
        raise InputError(f"layer {layer!r}'s centre cell does not depend on the input (no gradient reaches it).")
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def mask_on_layer(classifier: Classifier, layer: str, masks: torch.Tensor) -> torch.Tensor:
    """``masks`` ``(N, 1, H, W)`` (or ``(N, H, W)``) of the input on spatial ``layer``'s grid, as the layer sees
    them: a cell is in (True) when its receptive field (:func:`receptive_field`) touches the mask.

    At a layer's resolution an object lights up every cell that sees it, not only the cells it covers; a
    share of a map's mass "inside the mask" is only meaningful against the mask projected this way.
    """
    masks = masks.unsqueeze(1) if masks.dim() == 3 else masks
    if masks.dim() != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != tuple(classifier.input_size):
        raise InputError(f"masks must be (N, 1, H, W) at the model's input size {tuple(classifier.input_size)}, "
                         f"got {tuple(masks.shape)}.")
    height, width = receptive_field(classifier, layer)
    grown = torch.nn.functional.max_pool2d(masks.float().cpu(), (height, width), stride=1,
                                           padding=(height // 2, width // 2))[..., : masks.shape[-2], : masks.shape[-1]]
    return torch.nn.functional.adaptive_max_pool2d(grown, describe_layer(classifier, layer).grid) > 0
