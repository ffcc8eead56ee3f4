"""`fit()`: a plain, fast PyTorch training loop with telemetry, and `learning_step()`: one SGD step laid open."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer._plumbing import (
    JsonResult,
    eval_mode,
    hook_guard,
    isolated_rng,
    json_ready,
    legacy_positional,
    preserved_grads,
    seeded_generator,
    train_mode,
)
from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.hardware import describe_device, matmul_peak_gflops, resolve_device
from explainer.learn.flops import FlopCount, count_flops
from explainer.models.classifier import Classifier
from explainer.models.coerce import for_dataset, remember_dataset

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
TELEMETRY = ("epoch", "step", "off")
LOSSES = ("cross_entropy", "mse")
#: A training loss above this multiple of the first step's loss (or not finite) counts as diverged.
DIVERGENCE_FACTOR = 10.0
#: In ``telemetry="epoch"`` mode, per-layer gradient statistics are measured every this many steps.
EPOCH_STATS_EVERY = 10
EVAL_BATCH_SIZE = 1024


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


class _LayerMeter:
    """Per-layer gradient norms and update/weight ratios with a handful of fused ``_foreach`` ops."""

    def __init__(self, model: nn.Module) -> None:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.names = list(dict.fromkeys(_layer_of(name) for name, _ in named))
        index = {name: i for i, name in enumerate(self.names)}
        device = self.params[0].device
        self.layer_index = torch.tensor([index[_layer_of(name)] for name, _ in named], device=device)
        self._before: list[torch.Tensor] = []
        self._grad_norms: torch.Tensor | None = None

    def _per_layer(self, norms: Sequence[torch.Tensor]) -> torch.Tensor:
        squares = torch.stack(list(norms)).square()
        return torch.zeros(len(self.names), device=squares.device).index_add_(0, self.layer_index, squares).sqrt()

    @torch.no_grad()
    def before_step(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self._grad_norms = self._per_layer(torch._foreach_norm(grads))
        self._before = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def after_step(self) -> tuple[dict[str, float], dict[str, float]]:
        deltas = torch._foreach_sub([p.detach() for p in self.params], self._before)
        updates = self._per_layer(torch._foreach_norm(deltas))
        weights = self._per_layer(torch._foreach_norm(self._before))
        assert self._grad_norms is not None, "before_step() runs before after_step()"
        grads, ratios = torch.stack([self._grad_norms, updates / weights.clamp_min(1e-12)]).tolist()
        self._before = []
        return dict(zip(self.names, grads)), dict(zip(self.names, ratios))


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


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)`` (eval mode, restored after)."""
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    with eval_mode(model):
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size])
            target = y[start : start + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(1) == target).sum()
    loss, hits = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
    return loss / len(y), hits / len(y)


def _penalty(weights: Sequence[torch.Tensor], l1: float, l2: float) -> torch.Tensor:
    """L1 · Σ|w| + L2 · ½ Σw² over weight matrices and kernels (biases and norm scales excluded)."""
    total = torch.zeros((), device=weights[0].device)
    for weight in weights:
        if l1:
            total = total + l1 * weight.abs().sum()
        if l2:
            total = total + 0.5 * l2 * weight.square().sum()
    return total


def _diverged_message(epoch: int, step: int, loss: float, lr: float, optimizer: str) -> str:
    what = f"became {loss}" if not math.isfinite(loss) else f"rose to {loss:.3g}, over {DIVERGENCE_FACTOR:g}× its start"
    return (
        f"Training diverged in epoch {epoch} (step {step}): the training loss {what}. "
        f"The learning rate {lr:g} is far too high for {optimizer}; try one 10–100× smaller."
    )


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


_FIT_ORDER = ("epochs", "lr", "optimizer", "batch_size", "target_accuracy", "l1", "l2", "device", "seed", "callback",
              "telemetry", "stats_every")


@legacy_positional(*_FIT_ORDER)
def fit(
    model: nn.Module | Classifier,
    dataset: Dataset,
    *,
    epochs: int = 20,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 32,
    target_accuracy: float | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    callback: Callable[[EpochStats], bool | None] | None = None,
    telemetry: str = "epoch",
    stats_every: int | None = None,
    keep_checkpoints: bool = False,
) -> TrainingRun:
    """Train ``model`` (in place) on ``dataset`` with cross-entropy and return the run with telemetry.

    Data stay as tensors on the device: each epoch shuffles once by index and slices batches.
    After each epoch the whole test split is evaluated; the run stops early when test accuracy
    reaches ``target_accuracy``, when ``callback(EpochStats)`` returns ``False``, or when training
    diverges (``run.status == "diverged"``, no exception). ``telemetry``: ``"epoch"`` (per-epoch
    numbers, per-layer gradient statistics every ``stats_every`` = 10 steps), ``"step"`` (also one
    :class:`StepStats` per step, layer statistics every step unless ``stats_every`` says otherwise)
    or ``"off"`` (no per-layer statistics). ``device=None`` trains where the model's parameters are.
    ``seed`` fixes the shuffling and every random draw inside the model (dropout), through private
    generators and :func:`explainer._plumbing.isolated_rng`: the caller's global RNG is left as it was.
    The model is left in train mode, as a training loop leaves it. ``keep_checkpoints=True`` keeps a CPU
    copy of the weights after every epoch in ``run.checkpoints`` (for training-data attribution).
    ``model`` may be a :class:`~explainer.Classifier` (its module is trained on inputs normalized as it
    normalizes them); ``run.classifier`` is the trained model ready for the inspection calls.
    """
    wrapped = model if isinstance(model, Classifier) else None
    model, dataset = _module_and_data(model, dataset)
    _check_options(epochs, lr, optimizer, batch_size, target_accuracy, l1, l2, telemetry, stats_every)
    target_device = resolve_device(device) if device is not None else _model_device(model)
    model.to(target_device)
    _check_data(model, dataset, target_device)
    loop = _Loop(model, dataset, target_device, lr=lr, optimizer=optimizer, batch_size=batch_size, l1=l1, l2=l2,
                 telemetry=telemetry, every=stats_every or (1 if telemetry == "step" else EPOCH_STATS_EVERY), seed=seed)
    flops = count_flops(model, dataset.input_shape)
    checkpoints: list[dict[str, torch.Tensor]] = []

    def after_epoch(stats: EpochStats) -> bool | None:
        if keep_checkpoints:
            checkpoints.append({name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()})
        return callback(stats) if callback is not None else None

    with isolated_rng(seed):
        loop.run(epochs, target_accuracy, after_epoch)
    if loop.status == "completed":
        loop.message = f"Trained {len(loop.history)} epochs; test accuracy {loop.history[-1].test_accuracy:.1%}."
        if target_accuracy is not None:
            loop.status = "target_not_reached"
            loop.message += f" The target {target_accuracy:.0%} was not reached; train longer or raise the learning rate."
    return TrainingRun(
        model=model, dataset=dataset.name, history=loop.history, steps=loop.steps, status=loop.status,
        message=loop.message, parameters=sum(p.numel() for p in model.parameters()), flops=flops,
        train_seconds=loop.train_seconds, compute_seconds=loop.compute_seconds, samples_seen=loop.samples_seen,
        device=target_device.type, device_name=describe_device(target_device), threads=torch.get_num_threads(),
        peak_gflops=matmul_peak_gflops(target_device),
        config={
            "optimizer": optimizer, "lr": lr, "batch_size": batch_size, "max_epochs": epochs,
            "target_accuracy": target_accuracy, "l1": l1, "l2": l2, "seed": seed,
            "telemetry": telemetry, "stats_every": loop.every if loop.meter is not None else None,
            "loss": "cross_entropy",
        },
        model_name=type(model).__name__, checkpoints=checkpoints,
        classifier=_trained_classifier(model, dataset, wrapped),
    )


def _module_and_data(model: nn.Module | Classifier, dataset: Dataset) -> tuple[nn.Module, Dataset]:
    """The module to train and the data as it sees them (a Classifier's normalization applied)."""
    if not isinstance(model, Classifier):
        if not isinstance(model, nn.Module):
            raise InputError(f"fit trains a torch nn.Module or an explainer.Classifier, got {type(model).__name__}.")
        return model, dataset
    if isinstance(dataset, Dataset) and dataset.is_image:
        if dataset.input_shape[0] != model.in_chans:
            raise InputError(f"{dataset.name} images have {dataset.input_shape[0]} channel(s) but {model.name} "
                             f"takes {model.in_chans}; build a model for this dataset: build_model('cnn', dataset).")
        if any(m != 0 for m in model.mean) or any(s != 1 for s in model.std):
            dataset = replace(dataset, x_train=model.normalize(dataset.x_train), x_test=model.normalize(dataset.x_test))
    return model.module, dataset


def _trained_classifier(module: nn.Module, dataset: Dataset, wrapped: Classifier | None) -> Classifier | None:
    """The Classifier the caller gave, or the trained module wrapped for the dataset's images."""
    if wrapped is not None:
        return wrapped
    if not dataset.is_image:
        return None
    remember_dataset(module, dataset)
    return for_dataset(module, dataset)


def _model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


class _Loop:
    """The state of one :func:`fit` run: data on the device, optimizer, meters and what happened so far."""

    def __init__(self, model: nn.Module, dataset: Dataset, device: torch.device, *, lr: float, optimizer: str,
                 batch_size: int, l1: float, l2: float, telemetry: str, every: int, seed: int) -> None:
        self.model, self.device, self.lr, self.optimizer_name = model, device, lr, optimizer
        self.batch_size, self.telemetry, self.every = batch_size, telemetry, every
        self.x_train, self.y_train = dataset.x_train.to(device), dataset.y_train.to(device)
        self.x_test, self.y_test = dataset.x_test.to(device), dataset.y_test.to(device)
        count = len(self.y_train)
        # Batch norm cannot normalize a batch of one: such a trailing batch is left out of that epoch.
        has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.usable = count - 1 if has_batch_norm and count % batch_size == 1 and count > 1 else count
        self.meter = _LayerMeter(model) if telemetry != "off" else None
        self.stepper = _Stepper(model, optimizer, lr, l1, l2)
        self.generator = seeded_generator(seed)
        self.history: list[EpochStats] = []
        self.steps: list[StepStats] = []
        self.status, self.message = "completed", ""
        self.compute_seconds, self.train_seconds, self.samples_seen = 0.0, 0.0, 0
        self.step, self.first_loss = 0, float("nan")

    def run(self, epochs: int, target_accuracy: float | None, callback: Callable[[EpochStats], bool | None] | None) -> None:
        """Train epoch after epoch until done, the target is reached, the callback stops or training diverges."""
        self.model.train()
        loop_start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            stats = self.epoch(epoch, loop_start)
            self.history.append(stats)
            keep_going = callback is None or callback(stats) is not False
            if self.status != "diverged" and (not math.isfinite(stats.train_loss)
                                              or stats.train_loss > DIVERGENCE_FACTOR * self.first_loss):
                self.status = "diverged"
                self.message = _diverged_message(epoch, self.step, stats.train_loss, self.lr, self.optimizer_name)
            if self.status == "diverged":
                break
            if target_accuracy is not None and stats.test_accuracy >= target_accuracy:
                self.status = "reached_target"
                self.message = (f"Reached {stats.test_accuracy:.1%} test accuracy (target {target_accuracy:.0%}) "
                                f"after {epoch} epochs.")
                break
            if not keep_going:
                self.status, self.message = "stopped", f"Stopped by the callback after epoch {epoch}."
                break
        self.train_seconds = time.perf_counter() - loop_start

    def epoch(self, epoch: int, loop_start: float) -> EpochStats:
        """One pass over the shuffled training split, then the test split; stops early on divergence."""
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        grad_sums: dict[str, float] = {}
        ratio_sums: dict[str, float] = {}
        measured = epoch_samples = 0
        batches = _epoch_batches(self.x_train, self.y_train, self.generator, self.batch_size, self.usable)
        for index, (inputs, targets) in enumerate(batches):
            size = len(targets)
            step_loss, hits, grads, ratios = self.train_step(inputs, targets, index % self.every == 0)
            loss_sum += step_loss * size
            correct += hits
            epoch_samples += size
            for name in grads:
                grad_sums[name] = grad_sums.get(name, 0.0) + grads[name]
                ratio_sums[name] = ratio_sums.get(name, 0.0) + ratios[name]
            measured += bool(grads)
            if self.telemetry == "step":
                self.steps.append(StepStats(self.step, epoch, step_loss.item(), hits.item() / size, grads, ratios))
            if (grads or self.telemetry == "step") and self._diverging(epoch, step_loss.item()):
                break
        self.samples_seen += epoch_samples
        train_loss, train_hits = torch.stack([loss_sum, correct.to(loss_sum.dtype)]).tolist()
        seconds = time.perf_counter() - epoch_start
        self.compute_seconds += seconds
        test_loss, test_accuracy = evaluate(self.model, self.x_test, self.y_test)
        return EpochStats(
            epoch, train_loss / epoch_samples, train_hits / epoch_samples, test_loss, test_accuracy, seconds,
            time.perf_counter() - loop_start, epoch_samples / seconds,
            {name: value / measured for name, value in grad_sums.items()},
            {name: value / measured for name, value in ratio_sums.items()},
        )

    def train_step(
        self, inputs: torch.Tensor, targets: torch.Tensor, measure: bool
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float], dict[str, float]]:
        """One optimizer step: the batch's loss and hits (tensors) and, when measured, per-layer statistics."""
        meter = self.meter if measure else None
        step_loss, logits = self.stepper(inputs, targets, meter.before_step if meter is not None else None)
        self.step += 1
        if self.step == 1:
            self.first_loss = step_loss.item()
        grads, ratios = meter.after_step() if meter is not None else ({}, {})
        return step_loss, (logits.argmax(1) == targets).sum(), grads, ratios

    def _diverging(self, epoch: int, value: float) -> bool:
        if math.isfinite(value) and value <= DIVERGENCE_FACTOR * self.first_loss:
            return False
        self.status = "diverged"
        self.message = _diverged_message(epoch, self.step, value, self.lr, self.optimizer_name)
        return True


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
