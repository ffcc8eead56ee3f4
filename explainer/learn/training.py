"""`fit()`: a plain, fast PyTorch training loop with telemetry.

Its records are in :mod:`explainer.learn.training_run`, its options in :mod:`explainer.learn.training_options`,
the step it shares with ``train_steps`` in :mod:`explainer.learn.stepping` and ``learning_step`` in
:mod:`explainer.learn.sgd_step`; the names this module held before that split are still importable from here
(and from the old ``explainer.training``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from explainer.compat import legacy_positional
from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.hardware import describe_device, matmul_peak_gflops, resolve_device
from explainer.learn.flops import count_flops
from explainer.learn.sgd_step import LOSSES as LOSSES
from explainer.learn.sgd_step import LearningStep as LearningStep
from explainer.learn.sgd_step import learning_step as learning_step
from explainer.learn.stepping import _epoch_batches, _Stepper
from explainer.learn.stepping import train_steps as train_steps
from explainer.learn.training_options import OPTIMIZERS as OPTIMIZERS
from explainer.learn.training_options import TELEMETRY as TELEMETRY
from explainer.learn.training_options import _check_data, _check_options
from explainer.learn.training_run import EpochStats, StepStats, TrainingRun, _layer_of
from explainer.models.classifier import Classifier
from explainer.models.coerce import for_dataset, remember_dataset
from explainer.rng import isolated_rng, seeded_generator

#: A training loss above this multiple of the first step's loss (or not finite) counts as diverged.
DIVERGENCE_FACTOR = 10.0
#: In ``telemetry="epoch"`` mode, per-layer gradient statistics are measured every this many steps.
EPOCH_STATS_EVERY = 10
EVAL_BATCH_SIZE = 1024


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


def _diverged_message(epoch: int, step: int, loss: float, lr: float, optimizer: str) -> str:
    what = f"became {loss}" if not math.isfinite(loss) else f"rose to {loss:.3g}, over {DIVERGENCE_FACTOR:g}× its start"
    return (
        f"Training diverged in epoch {epoch} (step {step}): the training loss {what}. "
        f"The learning rate {lr:g} is far too high for {optimizer}; try one 10–100× smaller."
    )


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
    generators and :func:`explainer.rng.isolated_rng`: the caller's global RNG is left as it was.
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
