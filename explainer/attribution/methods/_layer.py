"""Shared helpers of the method families: the CAM layer's output (captured, or as a module for Captum) as a
map, and upsampling.

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


@contextmanager
def cam_layer(module: nn.Module, info: LayerInfo) -> Iterator[nn.Module]:
    """The module whose output is the CAM layer's ``(N, C, h, w)`` map while the block runs.

    Spatial layers are used as they are. For token layers a forward hook routes the patch tokens
    through a standalone grid module (``LayerInfo.to_grid`` and back), so Captum's layer methods
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
