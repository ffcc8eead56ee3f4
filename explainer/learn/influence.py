"""Training-data attribution: which training images made a prediction (Captum's TracInCP underneath).

TracIn (Pruthi et al. 2020) scores training image *z* for test image *x* as the sum over checkpoints of
``lr · ∇loss(z) · ∇loss(x)``: positive = it pushed the prediction the way it went (helpful), negative =
against it (harmful). A training image's *self-influence* (``lr · ‖∇loss(z)‖²`` summed over checkpoints)
is high for images the network had to work hard to fit – often mislabeled ones.
:func:`find_mislabeled` measures that against known mislabels, beside random order and the training-loss
ranking (a method that does not beat the loss ranking adds nothing to it).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.jsonable import json_ready
from explainer.run.long_call import Estimate, duration, start

METHODS = ("tracin",)
RANKINGS = ("tracin_self_influence", "training_loss", "random")


@dataclass
class DataAttribution:
    """The most helpful and harmful training images for each test image, and every training image's
    self-influence. ``helpful``/``harmful``: ``(n_test, top_k)`` training indices, best first, with their
    TracIn scores in ``helpful_scores``/``harmful_scores``; ``targets``: the class each test image was scored
    for (its prediction unless given)."""

    method: str
    helpful: torch.Tensor
    helpful_scores: torch.Tensor
    harmful: torch.Tensor
    harmful_scores: torch.Tensor
    self_influence: torch.Tensor = field(repr=False)
    targets: list[int]
    checkpoints: int
    layers: list[str]
    seconds: float
    device: str
    model_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: indices and scores per test image, how it was made (self-influence left out: ``.self_influence``)."""
        return json_ready({
            "method": self.method, "helpful": self.helpful, "helpful_scores": self.helpful_scores,
            "harmful": self.harmful, "harmful_scores": self.harmful_scores, "targets": self.targets,
            "checkpoints": self.checkpoints, "layers": self.layers, "seconds": self.seconds, "device": self.device,
            "model_name": self.model_name,
        })

    def summary(self) -> pd.DataFrame:
        """One row per test image: its target, the top helpful and harmful training image and their scores."""
        return pd.DataFrame([
            {"image": i, "target": self.targets[i], "most_helpful": int(self.helpful[i, 0]),
             "helpful_score": float(self.helpful_scores[i, 0]), "most_harmful": int(self.harmful[i, 0]),
             "harmful_score": float(self.harmful_scores[i, 0])}
            for i in range(len(self.targets))
        ])

    def verdict(self) -> str:
        """In words: what the result holds."""
        return (f"TracIn over {self.checkpoints} checkpoint(s): the {self.helpful.shape[1]} most helpful and harmful "
                f"training images for each of {len(self.targets)} test image(s), in {self.seconds:.1f} s.")


def _module_and_normalize(run_or_classifier: Any) -> tuple[nn.Module, Any, list[dict[str, torch.Tensor]], float | None, str]:
    from explainer.learn.training_run import TrainingRun
    from explainer.models import Classifier

    if isinstance(run_or_classifier, TrainingRun):
        return run_or_classifier.model, None, list(run_or_classifier.checkpoints), float(run_or_classifier.config["lr"]), \
            run_or_classifier.model_name
    if isinstance(run_or_classifier, Classifier):
        return run_or_classifier.module, run_or_classifier.normalize, [], None, run_or_classifier.name
    if isinstance(run_or_classifier, nn.Module):
        return run_or_classifier, None, [], None, type(run_or_classifier).__name__
    raise InputError(f"data_attribution needs a TrainingRun (from fit), a Classifier or an nn.Module, got "
                     f"{type(run_or_classifier).__name__}.")


def _train_tensors(train: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(train, Dataset):
        return train.x_train, train.y_train
    if isinstance(train, (tuple, list)) and len(train) == 2 and all(isinstance(t, torch.Tensor) for t in train):
        return train[0], train[1]
    raise InputError("train must be a Dataset (its train split is used) or a pair of tensors (images, labels).")


def gradient_layers(module: nn.Module) -> list[str]:
    """The default layers of TracIn's per-example weight gradients: linear layers and convolutions with numeric
    padding (``padding="same"`` convolutions are left out of the default; name them in ``layers=[...]``)."""
    names = [name for name, layer in module.named_modules() if name and (
        isinstance(layer, nn.Linear)
        or (isinstance(layer, nn.Conv2d) and not isinstance(layer.padding, str)))]
    if not names:
        raise InputError("The model has no linear layer or numerically padded convolution to take per-example "
                         "gradients in; pass layers=[...] naming such layers.")
    return names


def _tracin(module: nn.Module, x: torch.Tensor, y: torch.Tensor, checkpoints: Sequence[Mapping[str, torch.Tensor]],
            lr: float, layers: Sequence[str] | None, batch_size: int) -> Any:
    """A Captum TracInCP over a private copy of ``module`` (the loads never touch the caller's weights)."""
    from captum.influence import TracInCP
    from torch.utils.data import TensorDataset

    private = copy.deepcopy(module).eval()
    chosen = list(layers) if layers else gradient_layers(module)
    known = {name for name, layer in module.named_modules() if isinstance(layer, (nn.Linear, nn.Conv2d))}
    if unknown := [name for name in chosen if name not in known]:
        raise InputError(f"layers {unknown} are not linear or convolution layers of the model; TracIn can take "
                         f"per-example gradients in {sorted(known)}.")
    for name, parameter in private.named_parameters():  # no weight gradients outside the chosen layers
        parameter.requires_grad_(name.rpartition(".")[0] in chosen)
    _start_graphs_at(private, chosen)
    _explicit_padding(private)
    device = next((p.device for p in private.parameters()), torch.device("cpu"))
    states = list(checkpoints)

    def load(model: nn.Module, index: int) -> float:
        model.load_state_dict(states[index])
        return lr

    loader = _CountedLoader(TensorDataset(x.to(device), y.to(device)), batch_size=batch_size, shuffle=False)
    return TracInCP(private, loader, list(range(len(states))), checkpoints_load_func=load,
                    layers=chosen, loss_fn=nn.CrossEntropyLoss(reduction="sum"),
                    batch_size=batch_size, sample_wise_grads_per_batch=True), device


class _CountedLoader(DataLoader):
    """The training batches TracInCP walks through; each batch served moves ``bar`` (when one is set) by one."""

    bar: Any = None

    def __iter__(self) -> Any:
        for batch in super().__iter__():
            yield batch
            if self.bar is not None:
                self.bar.update(1)


def _start_tracin(tracin: Any, x: torch.Tensor, y: torch.Tensor, checkpoints: int, passes: int, what: str,
                  progress: bool, budget_seconds: float | None) -> Any:
    """The estimate, refusal and bar of ``passes`` walks through the training batches (each batch's gradients at
    every checkpoint, timed on the first batch after a warm-up on two images); the bar follows the batches."""
    loader = tracin.train_dataloader
    batches = len(loader)

    def estimate() -> Estimate:
        device = next((p.device for p in tracin.model.parameters()), torch.device("cpu"))
        first = (x[: loader.batch_size].to(device), y[: loader.batch_size].to(device))
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
            tracin.self_influence((first[0][:2], first[1][:2]))  # warm-up
            begun = time.perf_counter()
            tracin.self_influence(first)
            seconds = time.perf_counter() - begun
        return Estimate(passes * batches * seconds,
                        f"{passes} pass(es) × {batches} training batch(es) of {loader.batch_size} × {checkpoints} "
                        f"checkpoint(s), {duration(seconds)} per batch measured on {device}")

    bar = start(what, estimate, progress=progress, budget_seconds=budget_seconds, total=passes * batches,
                unit="batch", passes=passes * batches * checkpoints,
                shrink=f"fewer checkpoints ({checkpoints} now), fewer training images ({len(y)} now) or fewer layers "
                       "(the gradients of fewer weights)")
    loader.bar = bar
    return bar


def _explicit_padding(private: nn.Module) -> None:
    """``padding="same"`` as numbers in the private copy: Captum's per-example convolution gradients (``unfold``)
    take only numbers. For an odd kernel at stride 1 "same" is half the dilated kernel on every side."""
    for module in private.modules():
        if isinstance(module, nn.Conv2d) and module.padding == "same":
            sizes = [(k - 1) * d for k, d in zip(module.kernel_size, module.dilation)]
            if any(size % 2 for size in sizes) or module.padding_mode != "zeros":
                continue  # uneven padding: left as it is (Captum then refuses this layer)
            module.padding = tuple(size // 2 for size in sizes)


def _start_graphs_at(private: nn.Module, chosen: Sequence[str]) -> None:
    """Let every backward of the private copy stop at the first chosen layer a forward reaches.

    Captum's TracInCP marks the pixels as requiring gradients, so each backward ran down to the input although
    the chosen weights' gradients never need it. No chosen parameter is computed before the first chosen layer
    a forward reaches, so its input is replaced by a detached leaf that requires a gradient (Captum's per-example
    hooks need one there): the pixels' part of the graph is never built, the weight gradients are unchanged."""
    reached = [False]

    def new_forward(_module: nn.Module, _inputs: tuple[Any, ...]) -> None:
        reached[0] = False

    def cut(_module: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if reached[0] or not inputs or not isinstance(inputs[0], torch.Tensor):
            return None
        reached[0] = True
        return (inputs[0].detach().requires_grad_(), *inputs[1:])

    private.register_forward_pre_hook(new_forward)
    modules = dict(private.named_modules())
    for name in chosen:
        modules[name].register_forward_pre_hook(cut)


def _resolve(run_or_classifier: Any, train: Any, checkpoints: Sequence[Mapping[str, torch.Tensor]] | None,
             lr: float | None) -> tuple[nn.Module, Any, torch.Tensor, torch.Tensor, list[Mapping[str, torch.Tensor]], float, str]:
    module, normalize, kept, run_lr, name = _module_and_normalize(run_or_classifier)
    x, y = _train_tensors(train)
    states: list[Mapping[str, torch.Tensor]] = list(checkpoints) if checkpoints is not None else list(kept)
    if not states:  # no kept checkpoints: the weights as they are (TracIn with one checkpoint)
        states = [{k: v.detach().clone() for k, v in module.state_dict().items()}]
    rate = lr if lr is not None else run_lr if run_lr is not None else 1.0
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise InputError(f"lr must be a positive number (the learning rate the checkpoints were trained with), got {rate!r}.")
    if normalize is not None:
        x = normalize(x)
    return module, normalize, x, y, states, float(rate), name


def data_attribution(
    run_or_classifier: Any,
    train: Any,
    test_images: torch.Tensor,
    *,
    method: str = "tracin",
    checkpoints: Sequence[Mapping[str, torch.Tensor]] | None = None,
    top_k: int = 10,
    targets: Sequence[int] | torch.Tensor | None = None,
    lr: float | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> DataAttribution:
    """The ``top_k`` most helpful and harmful training images for each test image, and every self-influence.

    ``run_or_classifier``: a :class:`TrainingRun` from ``fit(..., keep_checkpoints=True)`` (its checkpoints and
    learning rate are used), a Classifier or an nn.Module (then ``checkpoints`` – a list of ``state_dict``\\ s –
    or the current weights as the one checkpoint). ``train``: a Dataset (its train split) or ``(images, labels)``.
    ``targets``: the class each test image is scored for (default: its prediction). ``layers``: the layers
    whose weight gradients are used (default :func:`gradient_layers`). The caller's model is never changed.
    It walks through the training batches three times (helpful, harmful, self-influence), each batch at every
    checkpoint. ``progress``: the estimate (those walks × one timed batch), then a bar over the batches on
    stderr; False is silent. ``budget_seconds``: refuse (InputError with what to shrink) a call estimated above
    it; None is no limit.
    """
    if method not in METHODS:
        raise InputError(f"Unknown data-attribution method {method!r}; choose one of: {', '.join(METHODS)}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive whole number, got {top_k!r}.")
    if not isinstance(test_images, torch.Tensor) or test_images.ndim < 2:
        raise InputError("test_images must be a batch tensor shaped like the training images, e.g. dataset.x_test[:8].")
    started = time.perf_counter()
    module, normalize, x, y, states, rate, name = _resolve(run_or_classifier, train, checkpoints, lr)
    if top_k > len(y):
        raise InputError(f"top_k={top_k} is more than the {len(y)} training images.")
    tracin, device = _tracin(module, x, y, states, rate, layers, batch_size)
    test = normalize(test_images) if normalize is not None else test_images
    test = test.to(device)
    if targets is None:
        with torch.no_grad():
            predicted = tracin.model(test).argmax(1)
    else:
        predicted = torch.as_tensor(list(targets) if not isinstance(targets, torch.Tensor) else targets).to(device)
    if len(predicted) != len(test):
        raise InputError(f"targets has {len(predicted)} entries for {len(test)} test images; give one per image.")
    bar = _start_tracin(tracin, x, y, len(states), 3, "data_attribution", progress, budget_seconds)
    with bar, torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        helpful = tracin.influence((test, predicted), k=top_k, proponents=True)
        harmful = tracin.influence((test, predicted), k=top_k, proponents=False)
        self_scores = tracin.self_influence(None)
    return DataAttribution(
        method=method, helpful=helpful.indices.cpu(), helpful_scores=helpful.influence_scores.detach().cpu(),
        harmful=harmful.indices.cpu(), harmful_scores=harmful.influence_scores.detach().cpu(),
        self_influence=self_scores.detach().cpu(), targets=[int(t) for t in predicted.tolist()],
        checkpoints=len(states), layers=list(layers) if layers else gradient_layers(module), seconds=time.perf_counter() - started,
        device=str(device), model_name=name,
    )


def self_influence(run_or_classifier: Any, train: Any, *, checkpoints: Sequence[Mapping[str, torch.Tensor]] | None = None,
                   lr: float | None = None, layers: Sequence[str] | None = None, batch_size: int = 64,
                   progress: bool = True, budget_seconds: float | None = None) -> torch.Tensor:
    """TracIn self-influence of every training image, ``(n_train,)`` (no test images needed): one walk through
    the training batches, with the estimate, bar and budget of :func:`data_attribution`."""
    return _self_influence(run_or_classifier, train, checkpoints, lr, layers, batch_size, "self_influence", progress,
                           budget_seconds)


def _self_influence(run_or_classifier: Any, train: Any, checkpoints: Sequence[Mapping[str, torch.Tensor]] | None,
                    lr: float | None, layers: Sequence[str] | None, batch_size: int, what: str, progress: bool,
                    budget_seconds: float | None) -> torch.Tensor:
    module, _, x, y, states, rate, _ = _resolve(run_or_classifier, train, checkpoints, lr)
    tracin, _ = _tracin(module, x, y, states, rate, layers, batch_size)
    bar = _start_tracin(tracin, x, y, len(states), 1, what, progress, budget_seconds)
    with bar, torch.enable_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        return tracin.self_influence(None).detach().cpu()


@dataclass
class MislabelSearch:
    """How well each ranking of the training set finds the known mislabeled images: precision at ``k``
    (the share of mislabels among the ``k`` top-ranked images; ``k`` = number of mislabels by default)."""

    precision: dict[str, float]
    k: int
    mislabeled: int
    n_train: int
    seconds: dict[str, float]
    method: str = "precision_at_k"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers and how they were made."""
        return json_ready({"precision": self.precision, "k": self.k, "mislabeled": self.mislabeled,
                           "n_train": self.n_train, "seconds": self.seconds, "method": self.method})

    def summary(self) -> pd.DataFrame:
        """One row per ranking: its precision@k and seconds."""
        return pd.DataFrame([{"ranking": name, "precision_at_k": value, "seconds": self.seconds.get(name, 0.0)}
                             for name, value in self.precision.items()])

    def verdict(self) -> str:
        """In words, for this one run (intervals over seeds come from the planted benchmark)."""
        parts = ", ".join(f"{name} {value:.0%}" for name, value in self.precision.items())
        return (f"Precision@{self.k} at finding the {self.mislabeled} mislabeled of {self.n_train} training images: "
                f"{parts} (random order expects {self.mislabeled / self.n_train:.0%}).")


def precision_at_k(scores: torch.Tensor | np.ndarray, relevant: Sequence[int] | torch.Tensor, k: int) -> float:
    """Share of ``relevant`` indices among the ``k`` highest ``scores`` (ties broken by index)."""
    values = np.asarray(scores, dtype=np.float64)
    top = np.argsort(-values, kind="stable")[:k]
    return float(np.isin(top, np.asarray(relevant, dtype=np.int64)).sum()) / k


def training_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Per-example cross-entropy of ``model`` on ``(x, y)`` (eval mode, restored after)."""
    from explainer.guards import eval_mode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    parts = []
    with torch.inference_mode(), eval_mode(model):
        for start in range(0, len(y), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            parts.append(F.cross_entropy(logits, y[start : start + batch_size].to(device), reduction="none").cpu())
    return torch.cat(parts)


def find_mislabeled(run: Any, train: Any, mislabeled: Sequence[int] | torch.Tensor, *, k: int | None = None,
                    seed: int = 0, layers: Sequence[str] | None = None, progress: bool = True,
                    budget_seconds: float | None = None) -> MislabelSearch:
    """Precision@k of TracIn self-influence, the final training loss and a seeded random order at finding
    the known ``mislabeled`` training indices (``run``: a TrainingRun with checkpoints). ``progress`` and
    ``budget_seconds``: the estimate, bar and budget of the self-influence walk (see :func:`data_attribution`)."""
    x, y = _train_tensors(train)
    wrong = torch.as_tensor(list(mislabeled) if not isinstance(mislabeled, torch.Tensor) else mislabeled, dtype=torch.int64)
    if len(wrong) == 0:
        raise InputError("There are no mislabeled training images to find; load the data with mislabeled > 0.")
    k = len(wrong) if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(y):
        raise InputError(f"k must be a whole number from 1 to {len(y)}, got {k!r}.")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    influence = _self_influence(run, train, None, None, layers, 64, "find_mislabeled", progress, budget_seconds)
    seconds["tracin_self_influence"] = time.perf_counter() - started
    started = time.perf_counter()
    model = run.model if hasattr(run, "model") else run
    losses = training_losses(model, x, y)
    seconds["training_loss"] = time.perf_counter() - started
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)).astype(np.float64))
    precision = {"tracin_self_influence": precision_at_k(influence, wrong, k),
                 "training_loss": precision_at_k(losses, wrong, k), "random": precision_at_k(-order, wrong, k)}
    return MislabelSearch(precision=precision, k=k, mislabeled=len(wrong), n_train=len(y), seconds=seconds)
