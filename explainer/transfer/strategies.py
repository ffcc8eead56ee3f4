"""The transfer strategies: a small registry of named ways to learn from a few-shot support.

A strategy is one :class:`Strategy` declaration – a name, a one-line description, whether it starts
from pretrained weights, and ``run(task, support, seed) -> test accuracy``. The five built-in ones
are registered here; :func:`register_strategy` adds one of your own, which ``compare_transfer``, the
CLI's ``--strategies`` and the verdict then use like the others. ``run`` is called inside a seeded,
isolated global RNG (``nn.init`` draws from it), so it must depend only on its arguments.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from explainer._plumbing import eval_mode
from explainer.errors import InputError
from explainer.models import load_model
from explainer.transfer.feature_cache import pooled_features
from explainer.transfer.learners import HeadedBackbone, fit_logistic, small_cnn, train_network
from explainer.transfer.task import SMALL_CNN_LR

if TYPE_CHECKING:
    import torch

    from explainer.transfer.task import TransferTask

StrategyRun = Callable[["TransferTask", np.ndarray, int], float]


@dataclass(frozen=True)
class Strategy:
    """A named way to learn from ``shots`` labelled examples per class.

    ``run(task, support, seed)`` trains on the training images ``support`` (indices) of
    ``task.data`` and returns the accuracy on the whole test split. ``pretrained`` says whether it
    starts from the backbone's pretrained weights (the verdict compares those with the others);
    ``uses_features`` whether it reads the cached frozen features (they are computed once before
    the runs). ``str(strategy)`` is its description.
    """

    name: str
    description: str
    pretrained: bool
    run: StrategyRun
    uses_features: bool = False

    def __str__(self) -> str:
        return self.description


class _Registry(Mapping[str, Strategy]):
    """Name → :class:`Strategy`, in registration order (the order results list them)."""

    def __init__(self) -> None:
        self._strategies: dict[str, Strategy] = {}

    def __getitem__(self, name: str) -> Strategy:
        return self._strategies[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._strategies)

    def __len__(self) -> int:
        return len(self._strategies)

    def __repr__(self) -> str:
        return f"STRATEGIES({', '.join(self._strategies)})"

    def add(self, strategy: Strategy, *, replace: bool) -> None:
        if not isinstance(strategy, Strategy):
            raise InputError(f"register_strategy needs a Strategy, got {type(strategy).__name__}.")
        if not strategy.name.isidentifier():
            raise InputError(f"A strategy name is one word of letters, digits and _, got {strategy.name!r}.")
        if strategy.name in self._strategies and not replace:
            raise InputError(f"Strategy {strategy.name!r} exists already; pass replace=True to replace it.")
        self._strategies[strategy.name] = strategy


#: Every registered strategy by name (a read-only mapping; ``register_strategy`` adds to it).
STRATEGIES = _Registry()


def register_strategy(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Add ``strategy`` to :data:`STRATEGIES` (``replace=True`` to overwrite one of the same name); returns it."""
    STRATEGIES.add(strategy, replace=replace)
    return strategy


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``; InputError with the closest name otherwise."""
    if name not in STRATEGIES:
        close = difflib.get_close_matches(str(name), list(STRATEGIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"Unknown strategy {name!r}.{hint} Choose from: {', '.join(STRATEGIES)}.")
    return STRATEGIES[name]


def check_strategies(strategies: Iterable[str] | str) -> list[str]:
    """Registered names in the given order, duplicates dropped; InputError naming an unknown or missing one."""
    names = [strategies] if isinstance(strategies, str) else list(strategies)
    if not names:
        raise InputError(f"No strategy given. Choose from: {', '.join(STRATEGIES)}.")
    for name in names:
        get_strategy(name)
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------- the five built-ins
def linear_probe(task: TransferTask, support: np.ndarray, seed: int) -> float:
    """Logistic regression on frozen pretrained features."""
    return task.score_head(task.probe(support), task.features().test)


def pixels(task: TransferTask, support: np.ndarray, seed: int) -> float:
    """Logistic regression on raw pixels."""
    head = fit_logistic(task.data.x_train[support].flatten(1).to(task.device), task.labels(support), task.data.num_classes)
    return task.score_head(head, task.data.x_test.flatten(1))


def _train_and_score(
    task: TransferTask, net: nn.Module, support: np.ndarray, seed: int, *, lr: float,
    prepare: Callable[[torch.Tensor], torch.Tensor],
) -> float:
    import torch

    net = net.to(task.device).to(memory_format=torch.channels_last)
    train_network(
        net, prepare(task.data.x_train[support]), task.labels(support), steps=task.steps, lr=lr, batch_size=task.batch_size, seed=seed,
    )
    return task.score(net, prepare)


def fine_tune(task: TransferTask, support: np.ndarray, seed: int) -> float:
    """The whole pretrained network, started from the probe head, BatchNorm statistics frozen."""
    net = HeadedBackbone(copy.deepcopy(task.classifier().module), task.probe(support), frozen_norms=True)
    return _train_and_score(task, net, support, seed, lr=task.lr, prepare=task.backbone_input)


def _feature_dim(module: nn.Module, in_chans: int, image_size: int) -> int:
    """Length of a module's pooled feature vector, read from one blank input."""
    import torch

    with eval_mode(module), torch.no_grad():
        return int(pooled_features(module, torch.zeros(1, in_chans, image_size, image_size)).shape[1])


def scratch(task: TransferTask, support: np.ndarray, seed: int) -> float:
    """The backbone's architecture from random weights, trained like ``fine_tune``."""
    backbone = task.classifier()
    random_init = load_model(backbone.name, pretrained=False, device="cpu").module
    head = nn.Linear(_feature_dim(random_init, backbone.in_chans, task.image_size), task.data.num_classes)
    return _train_and_score(task, HeadedBackbone(random_init, head), support, seed, lr=task.lr, prepare=task.backbone_input)


def small_cnn_strategy(task: TransferTask, support: np.ndarray, seed: int) -> float:
    """A three-layer CNN from random weights, on the resized pixels."""
    net = small_cnn(task.data.x_train.shape[1], task.data.num_classes)
    return _train_and_score(task, net, support, seed, lr=SMALL_CNN_LR, prepare=task.pixel_input)


for _strategy in (
    Strategy("linear_probe", "logistic regression on frozen pretrained features", True, linear_probe, True),
    Strategy(
        "fine_tune", "the whole pretrained network, started from the probe head, BatchNorm statistics frozen",
        True, fine_tune, True,
    ),
    Strategy("scratch", "the same architecture from random initialization", False, scratch),
    Strategy("small_cnn", "a three-layer CNN from random initialization", False, small_cnn_strategy),
    Strategy("pixels", "logistic regression on raw pixels", False, pixels),
):
    register_strategy(_strategy)
