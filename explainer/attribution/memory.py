"""Memory and batching: how many model evaluations fit one pass, from the measured memory of one sample.

Every ``explain`` call keeps its activations inside a budget (1 GiB on a CPU, half the free
memory of a GPU, or the caller's ``memory_budget_mb``); the samples per pass are the budget
divided by the bytes one sample needs, measured once per model, input shape and device.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from explainer.guards import eval_mode

if TYPE_CHECKING:
    from explainer.models import Classifier

#: Memory for one call's activations when the caller gives no budget, on a CPU (MiB).
CPU_MEMORY_BUDGET_MB = 1024
#: Share of the free GPU memory one call may use when the caller gives no budget.
GPU_MEMORY_SHARE = 0.5
#: On a CPU, forward-only passes run slower per image once their activations outgrow the caches
#: (efficientnet_lite0 at 224 px, 1 thread: 18.8 ms/image at batch 4, 24.4 at 16, 48.7 at 64), so
#: perturbation methods keep a pass under this many MiB of activations there.
CPU_FORWARD_PASS_MB = 64
#: Backward passes hold gradient buffers on top of the saved activations; measured peaks of
#: Integrated Gradients on efficientnet_lite0 stay below saved bytes × this factor.
BACKWARD_OVERHEAD = 1.25
#: A forward-only pass holds a few activations at once (input, output, skip connection, scratch).
FORWARD_LIVE_ACTIVATIONS = 4


@dataclass(frozen=True)
class SampleMemory:
    """Measured activation memory of one sample through a model (bytes)."""

    saved_bytes: int  # tensors autograd keeps for the backward pass
    largest_bytes: int  # the largest single activation

    @property
    def backward_bytes(self) -> int:
        """Budget for one sample in a forward + backward pass."""
        return max(1, int(self.saved_bytes * BACKWARD_OVERHEAD))

    @property
    def forward_bytes(self) -> int:
        """Budget for one sample in a forward-only pass."""
        return max(1, self.largest_bytes * FORWARD_LIVE_ACTIVATIONS)


_MEMORY: weakref.WeakKeyDictionary[nn.Module, dict[tuple, SampleMemory]] = weakref.WeakKeyDictionary()


def sample_memory(classifier: Classifier, shape: tuple[int, ...]) -> SampleMemory:
    """Measure (once per model, input shape and device) the activation memory of one sample.

    One forward pass of a zero image records every tensor autograd saves for the backward pass
    (distinct storages, weights excluded). Memory grows linearly with the batch, so a budget
    divided by this gives the samples per pass.
    """
    module = classifier.module
    key = (tuple(shape), str(classifier.device))
    cached = _MEMORY.setdefault(module, {})
    if key in cached:
        return cached[key]
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    weights = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    sample = torch.zeros(1, *shape, device=classifier.device, requires_grad=True)
    with eval_mode(module), torch.inference_mode(False), torch.enable_grad(), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(sample)
    activations = [size for pointer, size in storages.items() if pointer not in weights] or [sample.numel() * 4]
    cached[key] = SampleMemory(saved_bytes=sum(activations), largest_bytes=max(activations))
    return cached[key]


def samples_per_pass(budget: float, per_sample: int, forward_only: bool, device: torch.device) -> int:
    """Model evaluations per pass that fit the budget (and, for forward passes on a CPU, the caches)."""
    if forward_only and device.type == "cpu":
        budget = min(budget, CPU_FORWARD_PASS_MB * 2**20)
    return max(1, int(budget // per_sample))


def budget_bytes(device: torch.device, memory_budget_mb: float | None) -> float:
    """The caller's budget, else 1 GiB on a CPU or half the free memory of the GPU."""
    if memory_budget_mb is not None:
        return float(memory_budget_mb) * 2**20
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free * GPU_MEMORY_SHARE
    return CPU_MEMORY_BUDGET_MB * 2**20


