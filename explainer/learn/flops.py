"""FLOPs of one training step per sample: forward and backward, counted by torch, corrected for groups."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer.compat import legacy_positional
from explainer.errors import InputError
from explainer.jsonable import JsonResult, headline

aten = torch.ops.aten


#: What ``FlopCount.method == "meta_flop_counter"`` means, in words.
FLOP_METHOD_TEXT = "torch.utils.flop_counter.FlopCounterMode on the meta device, grouped-conv backward corrected"


@dataclass(frozen=True)
class FlopCount(JsonResult):
    """Floating-point operations for one sample (a multiply-add counts as 2).

    ``backward`` covers the gradients autograd really computes: weight gradients everywhere and
    input gradients for every layer but the first (the data needs none). The optimizer update is
    not counted (it is per parameter, not per sample, and small).
    """

    forward: int
    backward: int
    input_shape: tuple[int, ...]
    method: str = "meta_flop_counter"  # see FLOP_METHOD_TEXT
    model_name: str = ""
    seconds: float = 0.0
    device: str = "meta"  # counted on shapes only; no arithmetic runs

    @property
    def description(self) -> str:
        """How the FLOPs were counted, in words."""
        return FLOP_METHOD_TEXT if self.method == "meta_flop_counter" else self.method

    def summary(self) -> pd.DataFrame:
        """The headline numbers in one row: forward, backward and training FLOPs per sample."""
        return pd.DataFrame([{"model_name": self.model_name, "forward": self.forward, "backward": self.backward,
                              "training": self.training}])

    @headline
    def training(self) -> int:
        """FLOPs of one training sample: forward + backward."""
        return self.forward + self.backward


def _transpose(shape: Sequence[int]) -> list[int]:
    return [shape[1], shape[0], *shape[2:]]


def _conv_backward_flop(
    grad_out_shape: Any, x_shape: Any, w_shape: Any, _bias: Any, _stride: Any, _padding: Any, _dilation: Any,
    transposed: Any, _output_padding: Any, groups: Any, output_mask: Any, out_shape: Any = None, **kwargs: Any,
) -> int:
    """Convolution backward FLOPs; torch's own formula counts the weight gradient ``groups`` times over."""
    from torch.utils.flop_counter import conv_flop_count
    flops = 0
    if output_mask[0]:
        flops += conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:
        pair = (grad_out_shape, x_shape) if transposed else (x_shape, grad_out_shape)
        flops += conv_flop_count(_transpose(pair[0]), _transpose(pair[1]), _transpose(out_shape[1])) // groups
    return flops


@legacy_positional("num_samples")
def count_flops(model: nn.Module, input_shape: Sequence[int], *, num_samples: int = 2) -> FlopCount:
    """Forward and backward FLOPs per sample of ``model`` on inputs shaped ``input_shape`` (one sample).

    A copy of the model runs on the ``meta`` device (shapes only, no arithmetic), so counting
    costs milliseconds even for large networks. Labels are class indices; the loss is cross-entropy.
    """
    started = time.perf_counter()
    shape = tuple(int(size) for size in input_shape)
    if not shape or min(shape) < 1:
        raise InputError(f"input_shape must be the shape of one sample, e.g. (1, 8, 8), got {tuple(input_shape)!r}.")
    meta_model = copy.deepcopy(model).to("meta").train()
    inputs = torch.zeros((num_samples, *shape), device="meta")
    from torch.utils.flop_counter import FlopCounterMode  # ~0.5 s at import (it loads triton): on first use

    mapping = {aten.convolution_backward: _conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as forward_counter:
        logits = meta_model(inputs)
    if logits.ndim != 2:
        raise InputError(f"The model must return logits shaped (batch, classes); it returned {tuple(logits.shape)}.")
    loss = F.cross_entropy(logits, torch.zeros(num_samples, dtype=torch.long, device="meta"))
    with FlopCounterMode(display=False, custom_mapping=mapping) as backward_counter:
        loss.backward()
    return FlopCount(
        forward=forward_counter.get_total_flops() // num_samples,
        backward=backward_counter.get_total_flops() // num_samples,
        input_shape=shape,
        model_name=type(model).__name__,
        seconds=time.perf_counter() - started,
    )
