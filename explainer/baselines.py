"""Baselines: what a deleted pixel becomes – one vocabulary of reference images (:data:`BASELINES`)
for attribution methods and faithfulness checks, and :func:`baseline` to make one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from explainer.errors import InputError

#: The reference images ("what a removed pixel becomes"), in model-input space.
BASELINES = ("zero", "black", "white", "blur")
#: Older spellings still accepted by :func:`baseline` (and :func:`baseline_name`).
BASELINE_ALIASES = {"zeros": "zero"}
#: The blur baseline's Gaussian sigma as a fraction of the image's shorter side (at least 1 pixel).
BLUR_SIGMA_FRACTION = 1 / 20


def baseline_name(kind: str) -> str:
    """The canonical name of a baseline (``"zeros"`` → ``"zero"``); unknown names raise InputError."""
    name = BASELINE_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if name not in BASELINES:
        raise InputError(f"baseline={kind!r} is not supported; choose one of: {', '.join(BASELINES)}.")
    return name


def blur_sigma(height: int, width: int) -> float:
    """The blur baseline's Gaussian sigma in pixels: 1/20 of the shorter side, at least 1."""
    return max(1.0, min(height, width) * BLUR_SIGMA_FRACTION)


def baseline(
    inputs: torch.Tensor,
    kind: str,
    *,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """A reference image in model-input space, shaped like ``inputs`` ``(N, C, H, W)``.

    ``"zero"`` (alias ``"zeros"``): all zeros – the data mean for a normalized model; ``"black"`` /
    ``"white"``: pixels 0 / 1 normalized with ``mean`` and ``std`` (default 0 and 1: no normalization);
    ``"blur"``: a Gaussian blur of the inputs, sigma = :func:`blur_sigma` (1/20 of the shorter side).
    """
    name = baseline_name(kind)
    if name == "zero":
        return torch.zeros_like(inputs)
    if name in ("black", "white"):
        channels = inputs.shape[1]
        shift = _channel_values(mean, 0.0, channels, inputs)
        scale = _channel_values(std, 1.0, channels, inputs)
        value = 0.0 if name == "black" else 1.0
        return ((value - shift) / scale).expand_as(inputs).contiguous()
    from torchvision.transforms.functional import gaussian_blur

    height, width = (int(s) for s in inputs.shape[-2:])
    sigma = blur_sigma(height, width)
    # reflect padding needs kernel // 2 < side: the largest odd kernel that fits, at most 3 sigma each way
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * (min(height, width) - 1) + 1)
    if kernel < 3:
        return inputs.detach().clone()
    return gaussian_blur(inputs.detach(), [kernel, kernel], [sigma, sigma])


def _channel_values(values: Sequence[float] | torch.Tensor | None, default: float, channels: int,
                    like: torch.Tensor) -> torch.Tensor:
    if values is None:
        return torch.full((1, channels, 1, 1), default, dtype=like.dtype, device=like.device)
    tensor = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    if tensor.numel() not in (1, channels):
        raise InputError(f"mean/std need 1 or {channels} values (one per channel), got {tensor.numel()}.")
    return tensor.expand(channels).reshape(1, channels, 1, 1)
