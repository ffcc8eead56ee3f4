"""What `fit` and `train_steps` accept: the optimizers and telemetry modes, and the checks of their options and data."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.guards import eval_mode

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
TELEMETRY = ("epoch", "step", "off")


def _check_options(epochs: Any, lr: Any, optimizer: Any, batch_size: Any, target_accuracy: Any, l1: Any, l2: Any,
                   telemetry: Any, stats_every: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InputError(f"lr (learning rate) must be a positive number, got {lr!r}; 1e-3 suits Adam.")
    if optimizer not in OPTIMIZERS:
        raise InputError(f"Unknown optimizer {optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
        raise InputError(f"target_accuracy is a fraction in (0, 1], e.g. 0.97; got {target_accuracy!r}.")
    if l1 < 0 or l2 < 0:
        raise InputError(f"l1 and l2 regularization strengths must be ≥ 0, got l1={l1}, l2={l2}.")
    if telemetry not in TELEMETRY:
        raise InputError(f"Unknown telemetry {telemetry!r}; choose one of: {', '.join(TELEMETRY)}.")
    if stats_every is not None and (isinstance(stats_every, bool) or not isinstance(stats_every, int) or stats_every < 1):
        raise InputError(f"stats_every must be a positive integer (steps), got {stats_every!r}.")


def _check_data(model: nn.Module, dataset: Dataset, device: torch.device) -> None:
    if not isinstance(dataset, Dataset):
        raise InputError(f"fit needs an explainer Dataset (from load_dataset), got {type(dataset).__name__}.")
    if len(dataset.y_train) == 0 or len(dataset.y_test) == 0:
        raise InputError(f"Dataset {dataset.name!r} needs both training and test examples.")
    try:
        with torch.inference_mode(), eval_mode(model):
            logits = model(dataset.x_train[:2].to(device))
    except RuntimeError as exc:
        raise InputError(
            f"The model cannot take {dataset.name!r} inputs shaped {dataset.input_shape}: {exc}. "
            "Build it for this dataset, e.g. build_model('cnn', dataset)."
        ) from None
    if logits.ndim != 2 or logits.shape[1] < dataset.num_classes:
        raise InputError(
            f"The model outputs shape {tuple(logits.shape)} but {dataset.name!r} has {dataset.num_classes} classes; "
            f"it must return logits shaped (batch, {dataset.num_classes})."
        )
