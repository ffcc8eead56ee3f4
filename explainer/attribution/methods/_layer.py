"""Shared helpers of the method families: the CAM layer's output as a map, and upsampling.

Every helper removes the hooks it adds before it returns, error or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from explainer.models.layers import LayerInfo


@contextmanager
def layer_output(module: nn.Module, info: LayerInfo) -> Iterator[list[torch.Tensor]]:
    """Capture the raw output of the CAM layer ``info`` during the forward passes inside the block.

    The list receives the layer's output tensor of each forward pass (tokens stay tokens; use
    :func:`as_map` for the ``(N, C, h, w)`` view). The model continues on a clone, so in-place
    operations after the layer cannot change what was captured, and gradients with respect to
    the captured tensor are the gradients of the layer's output.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        captured.append(output)
        return output.clone()

    handle = module.get_submodule(info.name).register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def as_map(info: LayerInfo, output: torch.Tensor) -> torch.Tensor:
    """A layer output (or its gradient) as a map ``(N, C, h, w)``; class/distillation tokens dropped."""
    return info.to_grid(output)


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Maps ``(N, K, h, w)`` resized bilinearly (half-pixel centres, as OpenCV's resize) to ``size``."""
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def target_scores(logits: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """The logit of each image's target class, shape ``(N,)``."""
    index = torch.as_tensor(targets, device=logits.device).view(-1, 1)
    return logits.gather(1, index).squeeze(1)
