"""The learned kernels of a network's first convolution: what it looks for in raw pixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainer.models.classifier import Classifier


@dataclass
class FirstConvolution:
    """The first ``Conv2d`` of a model: its name, a copy of its weights (out, in, kh, kw) and its shape."""

    layer: str
    weights: torch.Tensor
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]


def first_convolution(classifier: Classifier) -> FirstConvolution | None:
    """The first convolution of ``classifier`` (in module order), or None for a model without one."""
    found = next(((n, m) for n, m in classifier.module.named_modules() if isinstance(m, torch.nn.Conv2d)), None)
    if found is None:
        return None
    name, conv = found
    kernel = conv.kernel_size if isinstance(conv.kernel_size, tuple) else (conv.kernel_size, conv.kernel_size)
    return FirstConvolution(name, conv.weight.detach().cpu().float().clone(), conv.in_channels, conv.out_channels,
                            (int(kernel[0]), int(kernel[1])))
