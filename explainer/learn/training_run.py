"""The records of a training run: per-epoch and per-step statistics and the finished `TrainingRun`."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from explainer.jsonable import json_ready
from explainer.learn.flops import FlopCount
from explainer.models.classifier import Classifier


@dataclass
class EpochStats:
    """What one epoch did. Train loss/accuracy are running means over the epoch's batches (data loss
    only, without the L1/L2 penalty); test numbers come from the whole test split after the epoch.
    ``grad_norm`` and ``update_ratio`` (‖Δw‖/‖w‖ of the optimizer step) are per layer, averaged over
    the steps measured in this epoch."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    elapsed: float
    samples_per_second: float
    grad_norm: dict[str, float]
    update_ratio: dict[str, float]


@dataclass
class StepStats:
    """One optimizer step (``telemetry="step"``); the per-layer dicts are empty on unmeasured steps."""

    step: int
    epoch: int
    loss: float
    accuracy: float
    grad_norm: dict[str, float]
    update_ratio: dict[str, float]


@dataclass
class TrainingRun:
    """A finished training run: per-epoch (and per-step) telemetry, outcome, cost and how it was made.

    ``train_seconds`` is the wall time of the loop (training steps plus the per-epoch test
    evaluation); ``compute_seconds`` the time spent in training steps alone, from which
    samples/s and GFLOP/s are computed. Counting FLOPs and probing the peak happen before
    and after the loop and are not included.
    """

    model: nn.Module = field(repr=False)
    dataset: str
    history: list[EpochStats]
    steps: list[StepStats] = field(repr=False)
    status: str
    message: str
    parameters: int
    flops: FlopCount
    train_seconds: float
    compute_seconds: float
    samples_seen: int
    device: str
    device_name: str
    threads: int
    peak_gflops: float
    config: dict
    model_name: str = ""  # the model's class name (e.g. "Sequential", "ResNet")
    #: With ``fit(..., keep_checkpoints=True)``: the model's ``state_dict`` (CPU copies) after each epoch.
    checkpoints: list[dict[str, torch.Tensor]] = field(default_factory=list, repr=False)
    #: The trained model as a :class:`~explainer.Classifier` for the dataset's images (None for 2-D point sets):
    #: what ``layer_activations``, ``explain``, ``ablate``, ``evaluate`` … take.
    classifier: Classifier | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        """Wall time of the training loop (the same as :attr:`train_seconds`)."""
        return self.train_seconds

    def to_dict(self) -> dict:
        """JSON-ready: :meth:`receipt_dict`, the model's name, seconds and the per-epoch history (NaN → None).

        The per-step telemetry is left out; ``json_ready(run.steps)`` gives it.
        """
        return json_ready({**self.receipt_dict(), "model_name": self.model_name, "seconds": self.seconds,
                           "history": self.history})

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per epoch: losses, accuracies, seconds and samples/s."""
        columns = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds",
                   "samples_per_second"]
        return pd.DataFrame([{name: getattr(epoch, name) for name in columns} for epoch in self.history],
                            columns=columns)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def epochs(self) -> int:
        """Epochs completed (a diverged epoch counts)."""
        return len(self.history)

    @property
    def test_accuracy(self) -> float:
        return self.history[-1].test_accuracy if self.history else float("nan")

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.compute_seconds if self.compute_seconds > 0 else float("nan")

    @property
    def gflops_per_second(self) -> float:
        """Training FLOPs (forward + backward) per second of training compute, in GFLOP/s."""
        return self.flops.training * self.samples_per_second / 1e9

    @property
    def peak_fraction(self) -> float:
        """Achieved GFLOP/s as a fraction of this machine's measured matrix-multiply peak."""
        return self.gflops_per_second / self.peak_gflops

    @property
    def layers(self) -> list[str]:
        """Names of the layers that carry parameters, in model order."""
        return list(dict.fromkeys(_layer_of(name) for name, _ in self.model.named_parameters()))

    def receipt(self) -> str:
        """One sentence with the computed numbers: parameters, accuracy, seconds, threads, GFLOP/s, peak share."""
        where = "on this CPU" if self.device == "cpu" else f"on this {self.device_name}"
        threads = f" ({self.threads} thread{'s' if self.threads != 1 else ''})" if self.device == "cpu" else ""
        outcome = "diverged" if self.diverged else f"trained to {self.test_accuracy:.1%} test accuracy"
        return (
            f"{self.parameters:,} parameters {outcome} in {self.train_seconds:.2f} s {where}{threads}: "
            f"{self.gflops_per_second:.1f} GFLOP/s = {self.peak_fraction:.0%} of this machine's measured "
            f"matrix-multiply peak ({self.peak_gflops:.0f} GFLOP/s)."
        )

    def receipt_dict(self) -> dict:
        """The receipt's numbers (and how they were made) as plain JSON-ready values."""
        return {
            "status": self.status,
            "message": self.message,
            "dataset": self.dataset,
            "test_accuracy": self.test_accuracy,
            "train_accuracy": self.history[-1].train_accuracy if self.history else float("nan"),
            "epochs": self.epochs,
            "train_seconds": self.train_seconds,
            "compute_seconds": self.compute_seconds,
            "parameters": self.parameters,
            "flops_per_sample": self.flops.training,
            "forward_flops_per_sample": self.flops.forward,
            "backward_flops_per_sample": self.flops.backward,
            "flop_method": self.flops.description,
            "samples_seen": self.samples_seen,
            "samples_per_second": self.samples_per_second,
            "gflops_per_second": self.gflops_per_second,
            "peak_gflops": self.peak_gflops,
            "peak_fraction": self.peak_fraction,
            "peak_method": "best of repeated fp32 square matrix multiplies (hardware.matmul_peak_gflops)",
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "config": dict(self.config),
            "receipt": self.receipt(),
        }


def _layer_of(parameter_name: str) -> str:
    return parameter_name.rpartition(".")[0] or parameter_name
