"""One convolution output pixel, step by step: input patch × kernel, summed, plus bias."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer.compat import legacy_positional
from explainer.errors import InputError
from explainer.inside.activations import capture
from explainer.jsonable import JsonResult, headline
from explainer.models import Classifier
from explainer.models.coerce import as_classifier

if TYPE_CHECKING:
    from explainer.models import ImageBatch

_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@dataclass
class ConvStep(JsonResult):
    """How ``out_channel`` at (``row``, ``col``) of a Conv2d output is computed, with every number.

    ``patch`` and ``kernel`` are ``(C_in/groups, kh, kw)``; ``products`` = patch × kernel; ``total`` =
    Σ products; ``result`` = total + bias; ``actual`` is the layer's own output there (they match).
    ``top``/``left`` locate the patch's first tap in the unpadded input (negative = inside the padding).
    """

    layer: str
    out_channel: int
    row: int
    col: int
    in_channels: list[int]  # input channels this output channel sees (its group)
    patch: torch.Tensor
    kernel: torch.Tensor
    products: torch.Tensor
    total: float
    bias: float
    result: float
    actual: float
    input_map: torch.Tensor  # (C_in/groups, H, W) the unpadded input channels of the group
    top: int
    left: int
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # left, right, top, bottom
    dilation: tuple[int, int]
    groups: int
    seconds: float = 0.0
    device: str = ""
    model_name: str = ""  # the classifier's name, or "module" for a bare Conv2d

    _not_in_dict = ("input_map",)

    def summary(self) -> pd.DataFrame:
        """The headline numbers in one row: Σ products, bias, result, the layer's own value, whether they match."""
        return pd.DataFrame([{"layer": self.layer, "out_channel": self.out_channel, "row": self.row, "col": self.col,
                              "total": self.total, "bias": self.bias, "result": self.result, "actual": self.actual,
                              "matches": self.matches}])

    @headline
    def matches(self) -> bool:
        """Whether the hand computation equals the layer's output (float32 rounding tolerated)."""
        scale = max(1.0, float(self.products.abs().sum()))
        return abs(self.result - self.actual) <= 1e-5 * scale


def _padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding as the layer applies it, including padding='same'."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        pads = []
        for dilation, size in zip(reversed(conv.dilation), reversed(conv.kernel_size)):
            total = dilation * (size - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)  # type: ignore[return-value]
    pad_h, pad_w = conv.padding
    return (pad_w, pad_w, pad_h, pad_h)


@legacy_positional("out_channel", "row", "col")
def conv_step(
    classifier: nn.Conv2d | Classifier,
    images: torch.Tensor | ImageBatch,
    *,
    out_channel: int,
    row: int,
    col: int,
    layer: str | None = None,
    image: int = 0,
) -> ConvStep:
    """Recompute one output value of a convolution by hand.

    ``classifier`` is a Classifier with ``layer`` naming one of its Conv2d layers (default: the first) fed
    ``images``, whose input to that layer is captured with a hook; or a bare ``nn.Conv2d`` fed its input
    (``(C, H, W)`` or ``(N, C, H, W)``) as ``images``. Stride, padding (also ``'same'`` and non-zero
    modes), dilation and groups are honoured.
    """
    started = time.perf_counter()
    module, layer, x, name = _conv_and_input(classifier, images, layer)
    if x.ndim != 4 or x.shape[1] != module.in_channels:
        raise InputError(f"{layer} expects input (N, {module.in_channels}, H, W); got shape {tuple(x.shape)}.")
    if not 0 <= image < x.shape[0]:
        raise InputError(f"image {image} out of range: the batch has {x.shape[0]} image(s).")
    x = x[image : image + 1].detach().to(module.weight.device, module.weight.dtype)
    with torch.inference_mode():
        output = module(x)[0]
    _check_position(layer, output, out_channel, row, col)
    pad = _padding(module)
    mode = _PAD_MODES[module.padding_mode]
    padded = F.pad(x, pad, mode=mode) if mode != "constant" else F.pad(x, pad, value=0.0)
    per_group = module.in_channels // module.groups
    group = out_channel // (module.out_channels // module.groups)
    channels = list(range(group * per_group, (group + 1) * per_group))
    (stride_h, stride_w), (dil_h, dil_w) = module.stride, module.dilation
    kh, kw = module.kernel_size
    top, left = row * stride_h, col * stride_w
    patch = padded[0, channels[0] : channels[-1] + 1,
                   top : top + dil_h * (kh - 1) + 1 : dil_h, left : left + dil_w * (kw - 1) + 1 : dil_w]
    kernel = module.weight[out_channel].detach()
    products = patch * kernel
    total = float(products.double().sum())
    bias = float(module.bias[out_channel].detach()) if module.bias is not None else 0.0
    return ConvStep(
        layer=layer, out_channel=int(out_channel), row=int(row), col=int(col), in_channels=channels,
        patch=patch.float().cpu(), kernel=kernel.float().cpu(), products=products.float().cpu(),
        total=total, bias=bias, result=total + bias, actual=float(output[out_channel, row, col]),
        input_map=x[0, channels[0] : channels[-1] + 1].float().cpu(),
        top=top - pad[2], left=left - pad[0], stride=(stride_h, stride_w), padding=pad,
        dilation=(dil_h, dil_w), groups=module.groups,
        seconds=time.perf_counter() - started, device=str(module.weight.device), model_name=name,
    )


def _conv_and_input(
    classifier: nn.Conv2d | Classifier, images: torch.Tensor | ImageBatch, layer: str | None
) -> tuple[nn.Conv2d, str, torch.Tensor, str]:
    """The convolution, its name, its input batch and the model's name."""
    if isinstance(classifier, Classifier):
        if layer is None:
            layer = next((n for n, m in classifier.module.named_modules() if isinstance(m, nn.Conv2d)), None)
            if layer is None:
                raise InputError(f"{classifier.name} has no Conv2d layer.")
        module = classifier.get_layer(layer)
        if not isinstance(module, nn.Conv2d):
            raise InputError(f"Layer {layer!r} is a {type(module).__name__}, not a Conv2d; pick a convolution layer.")
        with torch.inference_mode():
            x = capture(classifier, classifier.preprocess(images), [layer], layer_inputs=True)[layer]
        return module, layer, x, classifier.name
    if isinstance(classifier, nn.Module) and not isinstance(classifier, nn.Conv2d):
        return _conv_and_input(as_classifier(classifier, caller="conv_step"), images, layer)
    if isinstance(classifier, nn.Conv2d):
        if not isinstance(images, torch.Tensor):
            raise InputError("With an nn.Conv2d, pass its input as a tensor (C, H, W) or (N, C, H, W).")
        return classifier, layer or "conv", images.unsqueeze(0) if images.ndim == 3 else images, "module"
    raise InputError(f"conv_step needs an nn.Conv2d or a Classifier, got {type(classifier).__name__}.")


def _check_position(layer: str, output: torch.Tensor, out_channel: int, row: int, col: int) -> None:
    """Raise InputError unless (out_channel, row, col) lies inside the layer's ``(C, H, W)`` output."""
    if not 0 <= out_channel < output.shape[0]:
        raise InputError(
            f"out_channel {out_channel} out of range: {layer} has {output.shape[0]} output channels "
            f"(0–{output.shape[0] - 1})."
        )
    height, width = output.shape[1:]
    if not (0 <= row < height and 0 <= col < width):
        raise InputError(
            f"Position ({row}, {col}) is outside the {height}×{width} output; rows 0–{height - 1}, cols 0–{width - 1}."
        )
