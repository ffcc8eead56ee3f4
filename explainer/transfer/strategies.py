"""The transfer strategies: a small registry of named ways to learn from a few-shot support.

A strategy is one :class:`Strategy` declaration – a name, a one-line description, whether it starts
from pretrained weights, its search ``grid`` (the same number of settings for every built-in) and
``run(task, support, seed, params, held_out) -> predicted labels`` (of the training images ``held_out``,
or of the whole test split when it is None). The five built-in ones
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

from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.models import load_model
from explainer.transfer.feature_cache import pooled_features
from explainer.transfer.learners import HeadedBackbone, fit_logistic, small_cnn, train_network
from explainer.transfer.task import SMALL_CNN_LR

if TYPE_CHECKING:
    import torch

    from explainer.transfer.task import TransferTask

Params = dict[str, float]
StrategyRun = Callable[["TransferTask", np.ndarray, int, Params, "np.ndarray | None"], np.ndarray]
#: The search grid of the networks: learning rate × steps as multiples of the task's ``lr`` and ``steps``
#: (the first entry is the default, used where no validation split exists); 4 settings, like the probes'.
NETWORK_GRID: tuple[Params, ...] = (
    {"lr_scale": 1.0, "steps_scale": 1.0}, {"lr_scale": 1.0, "steps_scale": 0.5},
    {"lr_scale": 3.0, "steps_scale": 1.0}, {"lr_scale": 1 / 3, "steps_scale": 1.0},
)
#: The search grid of the logistic regressions: the inverse L2 strength ``C`` (4 settings).
LOGISTIC_GRID: tuple[Params, ...] = ({"C": 1.0}, {"C": 0.1}, {"C": 10.0}, {"C": 100.0})


@dataclass(frozen=True)
class Strategy:
    """A named way to learn from ``shots`` labelled examples per class.

    ``run(task, support, seed, params, held_out)`` trains on the training images ``support`` (indices)
    of ``task.data`` with the settings ``params`` (one entry of ``grid``) and returns the predicted labels
    of the training images ``held_out`` (the validation split) or, when None, of the whole test split. ``pretrained`` says whether it
    starts from the backbone's pretrained weights (the verdict compares those with the others);
    ``uses_features`` whether it reads the cached frozen features (they are computed once before
    the runs). ``str(strategy)`` is its description.
    """

    name: str
    description: str
    pretrained: bool
    run: StrategyRun
    uses_features: bool = False
    grid: tuple[Params, ...] = NETWORK_GRID

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
def _images(task: TransferTask, held_out: np.ndarray | None) -> torch.Tensor:
    return task.data.x_test if held_out is None else task.data.x_train[held_out]


def linear_probe(task: TransferTask, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None) -> np.ndarray:
    """Logistic regression on frozen pretrained features."""
    features = task.features()
    inputs = features.test if held_out is None else features.train[held_out]
    return task.predict_head(task.probe(support, c=params["C"]), inputs)


def pixels(task: TransferTask, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None) -> np.ndarray:
    """Logistic regression on raw pixels."""
    head = fit_logistic(task.data.x_train[support].flatten(1).to(task.device), task.labels(support),
                        task.data.num_classes, c=params["C"])
    return task.predict_head(head, _images(task, held_out).flatten(1))


def _train_and_predict(
    task: TransferTask, net: nn.Module, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None,
    *, lr: float, prepare: Callable[[torch.Tensor], torch.Tensor],
) -> np.ndarray:
    import torch

    net = net.to(task.device).to(memory_format=torch.channels_last)
    steps = max(1, round(task.steps * params["steps_scale"]))
    train_network(net, prepare(task.data.x_train[support]), task.labels(support), steps=steps,
                  lr=lr * params["lr_scale"], batch_size=task.batch_size, seed=seed)
    return task.predict(net, prepare, _images(task, held_out))


def fine_tune(task: TransferTask, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None) -> np.ndarray:
    """The whole pretrained network, started from the probe head, BatchNorm statistics frozen."""
    net = HeadedBackbone(copy.deepcopy(task.classifier().module), task.probe(support), frozen_norms=True)
    return _train_and_predict(task, net, support, seed, params, held_out, lr=task.lr, prepare=task.backbone_input)


def _feature_dim(module: nn.Module, in_chans: int, image_size: int) -> int:
    """Length of a module's pooled feature vector, read from one blank input."""
    import torch

    with eval_mode(module), torch.no_grad():
        return int(pooled_features(module, torch.zeros(1, in_chans, image_size, image_size)).shape[1])


def scratch(task: TransferTask, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None) -> np.ndarray:
    """The backbone's architecture from random weights, trained like ``fine_tune``."""
    backbone = task.classifier()
    random_init = load_model(backbone.name, pretrained=False, device="cpu").module
    head = nn.Linear(_feature_dim(random_init, backbone.in_chans, task.image_size), task.data.num_classes)
    return _train_and_predict(task, HeadedBackbone(random_init, head), support, seed, params, held_out,
                              lr=task.lr, prepare=task.backbone_input)


def small_cnn_strategy(
    task: TransferTask, support: np.ndarray, seed: int, params: Params, held_out: np.ndarray | None,
) -> np.ndarray:
    """A three-layer CNN from random weights, on the resized pixels."""
    net = small_cnn(task.data.x_train.shape[1], task.data.num_classes)
    return _train_and_predict(task, net, support, seed, params, held_out, lr=SMALL_CNN_LR, prepare=task.pixel_input)


for _strategy in (
    Strategy("linear_probe", "logistic regression on frozen pretrained features", True, linear_probe, True, LOGISTIC_GRID),
    Strategy(
        "fine_tune", "the whole pretrained network, started from the probe head, BatchNorm statistics frozen",
        True, fine_tune, True,
    ),
    Strategy("scratch", "the same architecture from random initialization", False, scratch),
    Strategy("small_cnn", "a three-layer CNN from random initialization", False, small_cnn_strategy),
    Strategy("pixels", "logistic regression on raw pixels", False, pixels, False, LOGISTIC_GRID),
):
    register_strategy(_strategy)
