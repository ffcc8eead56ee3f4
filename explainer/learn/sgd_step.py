"""`learning_step()`: one plain SGD step laid open, with every number it involved."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer.compat import legacy_positional
from explainer.errors import InputError
from explainer.guards import hook_guard, preserved_grads, train_mode
from explainer.jsonable import JsonResult

LOSSES = ("cross_entropy", "mse")


@dataclass
class LearningStep(JsonResult):
    """Everything one plain SGD step did: new weight = old weight + update, update = −lr · gradient.

    ``activations`` maps each leaf layer's name to its output, in forward order; the weight dicts
    map parameter names (e.g. ``"fc1.weight"``) to tensors. All tensors are detached copies.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    activations: dict[str, torch.Tensor]
    logits: torch.Tensor
    loss: float
    loss_name: str
    lr: float
    weights_before: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]
    updates: dict[str, torch.Tensor]
    weights_after: dict[str, torch.Tensor]
    seconds: float
    device: str
    model_name: str = ""
    method: str = "sgd"  # plain SGD: update = −lr · gradient

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per parameter: its norm before, the gradient's and the update's norm."""
        return pd.DataFrame([
            {"parameter": name, "weight_norm": float(self.weights_before[name].norm()),
             "gradient_norm": float(self.gradients[name].norm()), "update_norm": float(self.updates[name].norm())}
            for name in self.weights_before
        ])


def _step_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "cross_entropy":
        return F.cross_entropy(logits, targets)
    return F.mse_loss(logits, F.one_hot(targets, logits.shape[1]).to(logits.dtype))


@legacy_positional("lr", "loss")
def learning_step(
    model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], *, lr: float, loss: str = "cross_entropy"
) -> LearningStep:
    """Run one SGD step on ``batch = (inputs, targets)`` and return every number it involved.

    The model's weights are updated in place exactly as returned; everything else is as it was:
    forward hooks that record each leaf layer's output are removed afterwards, every ``training`` flag
    is restored and each parameter's ``.grad`` is the one it had before (also on error). ``loss`` is
    ``"cross_entropy"`` or ``"mse"`` (against one-hot targets).
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr (learning rate) must be a positive number, got {lr!r}.")
    if loss not in LOSSES:
        raise InputError(f"Unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}.")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
        raise InputError("batch must be a pair of tensors (inputs, targets), e.g. (dataset.x_train[:8], dataset.y_train[:8]).")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InputError("The model has no trainable parameters; there is nothing for a learning step to change.")
    device = named[0][1].device
    inputs, targets = batch[0].to(device), batch[1].to(device)
    activations: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                activations[name] = output.detach().clone()
        return hook

    start = time.perf_counter()
    with hook_guard(model), train_mode(model), preserved_grads(model):
        for name, module in model.named_modules():
            if name and not any(module.children()):
                module.register_forward_hook(record(name))
        for _, p in named:
            p.grad = None
        try:
            logits = model(inputs)
            value = _step_loss(logits, targets, loss)
        except (RuntimeError, IndexError) as exc:
            raise InputError(f"The model cannot take this batch (inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}): {exc}") from None
        value.backward()
        before = {name: p.detach().clone() for name, p in named}
        gradients = {name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for name, p in named}
        updates = {name: gradients[name] * -lr for name in gradients}
        with torch.no_grad():
            for name, p in named:
                p.add_(updates[name])
        after = {name: p.detach().clone() for name, p in named}
    return LearningStep(
        inputs=inputs.detach().clone(), targets=targets.detach().clone(), activations=activations,
        logits=logits.detach().clone(), loss=value.item(), loss_name=loss, lr=float(lr),
        weights_before=before, gradients=gradients, updates=updates, weights_after=after,
        seconds=time.perf_counter() - start, device=str(device), model_name=type(model).__name__,
    )
