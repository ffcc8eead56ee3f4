"""The optimizer step and seeded batching that `fit` shares with `train_steps()`, a bare step budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from explainer.errors import InputError
from explainer.learn.training_options import OPTIMIZERS, _check_options
from explainer.rng import seeded_generator


def _penalty(weights: Sequence[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """L1 · Σ|w| + L2 · ½ Σw² over weight matrices and kernels (biases and norm scales excluded)."""
    total = torch.zeros((), device=weights[0].device)
    for weight in weights:
        if l1:
            total = total + l1 * weight.abs().sum()
        if l2:
            total = total + 0.5 * l2 * weight.square().sum()
    return total


class _Stepper:
    """One optimizer step on cross-entropy (plus the L1/L2 penalty): the step both :func:`fit` and
    :func:`train_steps` take."""

    def __init__(self, model: nn.Module, optimizer: str, lr: float, l1: float = 0.0, l2: float = 0.0) -> None:
        self.model = model
        self.opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
        self.weights = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]
        self.l1, self.l2 = l1, l2
        self.regularized = (l1 > 0 or l2 > 0) and bool(self.weights)

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, before_step: Callable[[], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward, ``before_step()`` (to measure gradients), step; the data loss and the logits
        (both detached)."""
        logits = self.model(inputs)
        loss = F.cross_entropy(logits, targets)
        objective = loss + _penalty(self.weights, self.l1, self.l2) if self.regularized else loss
        self.opt.zero_grad(set_to_none=True)
        objective.backward()
        if before_step is not None:
            before_step()
        self.opt.step()
        return loss.detach(), logits.detach()


def _epoch_batches(
    inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, batch_size: int, usable: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch: a single seeded shuffle (on the CPU generator), then consecutive slices of ``batch_size``
    over the first ``usable`` shuffled examples (default: all of them)."""
    order = torch.randperm(len(targets), generator=generator).to(inputs.device)
    xs, ys = inputs[order], targets[order]
    end = len(targets) if usable is None else usable
    for start in range(0, end, batch_size):
        yield xs[start : min(start + batch_size, end)], ys[start : min(start + batch_size, end)]


def train_steps(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 32,
    seed: int = 0,
    l1: float = 0.0,
    l2: float = 0.0,
) -> list[float]:
    """Exactly ``steps`` optimizer steps on cross-entropy, mini-batches drawn epoch by epoch in a seeded order
    (the same step and batching as :func:`fit`); returns each step's data loss.

    For a step budget without fit's epoch bookkeeping: no test pass, no divergence stop, no telemetry.
    The model's mode is the caller's (set ``model.train()`` first); the batch order comes from a private
    generator seeded with ``seed``, other random draws (dropout) from the global RNG as the caller set it.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}.")
    _check_options(1, lr, optimizer, batch_size, None, l1, l2, "off", None)
    if len(targets) == 0 or len(inputs) != len(targets):
        raise InputError(f"inputs and targets need the same, non-zero length; got {len(inputs)} and {len(targets)}.")
    step = _Stepper(model, optimizer, lr, l1, l2)
    generator = seeded_generator(seed)
    losses: list[float] = []
    while len(losses) < steps:
        for batch_inputs, batch_targets in _epoch_batches(inputs, targets, generator, batch_size):
            losses.append(float(step(batch_inputs, batch_targets)[0]))
            if len(losses) == steps:
                break
    return losses
