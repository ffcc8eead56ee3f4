"""TensorFlow-Playground parity in PyTorch: small networks on 2-D toy sets, every neuron visible."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer.compat import legacy_positional
from explainer.data.datasets import TOY_SETS, Dataset, load_dataset
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.hardware import resolve_device
from explainer.jsonable import json_ready
from explainer.learn.architectures import ACTIVATIONS, build_mlp
from explainer.learn.training import fit
from explainer.learn.training_options import OPTIMIZERS
from explainer.learn.training_run import EpochStats, TrainingRun
from explainer.rng import isolated_rng

#: Input features as in TensorFlow Playground, computed from the point (x1, x2).
FEATURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1 * x1,
    "x2^2": lambda x1, x2: x2 * x2,
    "x1*x2": lambda x1, x2: x1 * x2,
    "sin(x1)": lambda x1, x2: torch.sin(x1),
    "sin(x2)": lambda x1, x2: torch.sin(x2),
}
MAX_LAYERS, MAX_NEURONS = 6, 8
#: Half-width of the plotted input plane (TensorFlow Playground shows [-6, 6]²).
PLANE = 6.0


@dataclass(frozen=True)
class PlaygroundConfig:
    """One TensorFlow-Playground setting. Defaults match the Playground's start page (circle, x1 and
    x2, 4-2 tanh network, learning rate 0.03, batch 10, plain SGD, half the points for training)."""

    dataset: str = "circle"
    noise: float = 0.0
    train_fraction: float = 0.5
    features: tuple[str, ...] = ("x1", "x2")
    hidden: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    lr: float = 0.03
    optimizer: str = "sgd"
    l1: float = 0.0
    l2: float = 0.0
    batch_size: int = 10
    epochs: int = 100
    seed: int = 0
    n_points: int = 400
    grid_size: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.dataset not in TOY_SETS:
            raise InputError(f"Unknown playground dataset {self.dataset!r}; choose one of: {', '.join(TOY_SETS)}.")
        if not 0.0 <= self.noise <= 0.5:
            raise InputError(f"noise must be between 0 and 0.5, got {self.noise}.")
        if not 0.0 < self.train_fraction < 1.0:
            raise InputError(f"train_fraction must be between 0 and 1 (exclusive), got {self.train_fraction}.")
        unknown = [name for name in self.features if name not in FEATURES]
        if unknown or not self.features or len(set(self.features)) != len(self.features):
            raise InputError(
                f"features must be distinct names from: {', '.join(FEATURES)}; got {list(self.features)!r}."
            )
        if len(self.hidden) > MAX_LAYERS or any(
            isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_NEURONS for width in self.hidden
        ):
            raise InputError(
                f"hidden must list 0–{MAX_LAYERS} layers of 1–{MAX_NEURONS} neurons each, e.g. (4, 2); got {self.hidden!r}."
            )
        if self.activation not in ACTIVATIONS:
            raise InputError(f"Unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}.")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"Unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}.")
        if self.grid_size < 2:
            raise InputError(f"grid_size must be at least 2, got {self.grid_size}.")


@dataclass
class PlaygroundRun:
    """A trained playground network and everything to draw it.

    ``output`` and the maps hold values over a ``grid_size``² grid of the plane (rows follow
    ``grid`` along x2, columns along x1). ``output`` = P(blue) − P(orange) in [-1, 1]: positive is
    blue, negative orange, as in TensorFlow Playground. ``weights`` lists ``(W, b)`` per layer, the
    last one as a single output neuron (blue logit minus orange logit, which is exactly what
    ``output`` squashes). ``snapshots`` maps an epoch to the ``output`` grid after it.
    """

    config: PlaygroundConfig
    training: TrainingRun
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    grid: np.ndarray
    output: np.ndarray
    feature_maps: dict[str, np.ndarray]
    neuron_maps: list[np.ndarray]
    weights: list[tuple[np.ndarray, np.ndarray]]
    snapshots: dict[int, np.ndarray]

    @property
    def status(self) -> str:
        """How training ended: ``"completed"``, ``"diverged"`` … (the same as ``training.status``)."""
        return self.training.status

    @property
    def message(self) -> str:
        """How training ended, in words (the same as ``training.message``)."""
        return self.training.message

    @property
    def train_loss(self) -> list[float]:
        return [epoch.train_loss for epoch in self.training.history]

    @property
    def test_loss(self) -> list[float]:
        return [epoch.test_loss for epoch in self.training.history]

    @property
    def test_accuracy(self) -> float:
        return self.training.test_accuracy

    @property
    def seconds(self) -> float:
        """Wall time of the training loop."""
        return self.training.train_seconds

    @property
    def device(self) -> str:
        """Where the network trained (``"cpu"`` or ``"cuda"``); ``training.device_name`` says which one."""
        return self.training.device

    @property
    def model_name(self) -> str:
        """The network as the Playground draws it: ``mlp 2-4-2-2 tanh`` (inputs, hidden widths, outputs, activation)."""
        widths = "-".join(str(width) for width in (len(self.config.features), *self.config.hidden, 2))
        return f"mlp {widths} {self.config.activation}"

    def summary(self) -> pd.DataFrame:
        """The headline numbers in one row: status, epochs, final losses, test accuracy, seconds, parameters."""
        history = self.training.history
        return pd.DataFrame([{
            "model_name": self.model_name,
            "status": self.training.status,
            "epochs": self.training.epochs,
            "train_loss": history[-1].train_loss,
            "test_loss": history[-1].test_loss,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
            "parameters": self.training.parameters,
            "device": self.device,
            "device_name": self.training.device_name,
        }])

    def to_dict(self) -> dict:
        """JSON-ready: the headline numbers, the configuration, the training run (:meth:`TrainingRun.to_dict`)
        and every grid, point set and weight (NaN → None)."""
        return {
            **json_ready(self.summary().iloc[0].to_dict()),
            "message": self.training.message,
            "config": json_ready(self.config),
            **json_ready(self, exclude=("config", "training")),
            "training": self.training.to_dict(),
        }


@dataclass
class PlaygroundFrame:
    """The network's output over the plane at one moment of training, for drawing it live.

    ``epoch`` 0 is the untrained network. ``train_loss``/``test_loss`` list the finished epochs so far;
    ``grid``, ``output`` and the points are as in :class:`PlaygroundRun`.
    """

    config: PlaygroundConfig
    epoch: int
    grid: np.ndarray
    output: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_loss: list[float]
    test_loss: list[float]


def feature_matrix(points: torch.Tensor, features: tuple[str, ...]) -> torch.Tensor:
    """The chosen input features of 2-D ``points`` ``(N, 2)`` as a float32 ``(N, len(features))`` tensor."""
    x1, x2 = points[:, 0], points[:, 1]
    return torch.stack([FEATURES[name](x1, x2) for name in features], dim=1).float()


def _plane_grid(size: int, *point_sets: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    reach = max(PLANE, *(float(points.abs().max()) for points in point_sets))
    axis = np.linspace(-reach, reach, size, dtype=np.float32)
    x1, x2 = np.meshgrid(axis, axis)
    return axis, torch.from_numpy(np.stack([x1.ravel(), x2.ravel()], axis=1))


@torch.inference_mode()
def _neuron_outputs(model: nn.Sequential, inputs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every hidden neuron's output (one tensor per layer, after its activation) and P(blue) − P(orange)."""
    hidden: list[torch.Tensor] = []
    values = inputs
    for name, module in model.named_children():
        values = module(values)
        if name.startswith("act"):
            hidden.append(values)
    probabilities = values.softmax(dim=1)
    return hidden, probabilities[:, 0] - probabilities[:, 1]


def _weights(model: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    linear = [module for module in model.children() if isinstance(module, nn.Linear)]
    weights = [(layer.weight.detach().cpu().numpy().copy(), layer.bias.detach().cpu().numpy().copy()) for layer in linear]
    out_w, out_b = weights[-1]
    weights[-1] = ((out_w[0] - out_w[1])[None, :], (out_b[0] - out_b[1])[None])
    return weights


@legacy_positional("callback", "snapshots", "device", "on_frame")
def train_playground(
    config: PlaygroundConfig | None = None,
    *,
    callback: Callable[[EpochStats], bool | None] | None = None,
    snapshots: int = 10,
    device: str | torch.device | None = None,
    on_frame: Callable[[PlaygroundFrame], None] | None = None,
) -> PlaygroundRun:
    """Train a TensorFlow-Playground network and return its boundary, neurons and weights.

    The network is ``explainer.build_mlp`` over the chosen features with two output logits, initialised
    from ``config.seed`` (without touching the caller's global RNG) and trained by :func:`explainer.fit`
    (cross-entropy; its callback runs each epoch). ``snapshots`` output grids are kept at evenly spaced
    epochs for replaying the boundary as it forms. ``device=None`` means the default device (CUDA when
    available, as for every new model); networks this small train about as fast on the CPU.
    ``on_frame(PlaygroundFrame)`` is called with the untrained network (epoch 0) and at every kept
    snapshot, so a dashboard can redraw the boundary and loss curve while the network trains.
    """
    config = config or PlaygroundConfig()
    points, data = _playground_data(config)
    with isolated_rng(config.seed):
        model = build_mlp((len(config.features),), 2, hidden=config.hidden, activation=config.activation)
    axis, plane = _plane_grid(config.grid_size, points.x_train, points.x_test)
    target_device = resolve_device(device)
    plane_features = feature_matrix(plane, config.features).to(target_device)
    model.to(target_device)
    shape = (config.grid_size, config.grid_size)
    keep_every = max(1, math.ceil(config.epochs / snapshots)) if snapshots > 0 else 0
    frames: dict[int, np.ndarray] = {}
    history: list[EpochStats] = []

    def boundary() -> np.ndarray:
        with eval_mode(model):
            return _neuron_outputs(model, plane_features)[1].reshape(shape).cpu().numpy()

    def show(epoch: int, output: np.ndarray) -> None:
        if on_frame is not None:
            on_frame(PlaygroundFrame(
                config, epoch, axis, output, points.x_train.numpy(), points.y_train.numpy(), points.x_test.numpy(),
                points.y_test.numpy(), [h.train_loss for h in history], [h.test_loss for h in history]))

    def each_epoch(stats: EpochStats) -> bool | None:
        history.append(stats)
        if keep_every and (stats.epoch % keep_every == 0 or stats.epoch == 1):
            frames[stats.epoch] = boundary()
            show(stats.epoch, frames[stats.epoch])
        return callback(stats) if callback is not None else None

    if on_frame is not None:
        show(0, boundary())
    run = fit(
        model, data, epochs=config.epochs, lr=config.lr, optimizer=config.optimizer, batch_size=config.batch_size,
        l1=config.l1, l2=config.l2, device=target_device, seed=config.seed, callback=each_epoch, telemetry="epoch",
    )
    model.eval()
    hidden, output = _neuron_outputs(model, plane_features)
    return PlaygroundRun(
        config=config, training=run,
        x_train=points.x_train.numpy(), y_train=points.y_train.numpy(),
        x_test=points.x_test.numpy(), y_test=points.y_test.numpy(),
        grid=axis, output=output.reshape(shape).cpu().numpy(),
        feature_maps={name: plane_features[:, i].reshape(shape).cpu().numpy() for i, name in enumerate(config.features)},
        neuron_maps=[layer.T.reshape(-1, *shape).cpu().numpy() for layer in hidden],
        weights=_weights(model), snapshots=frames,
    )


def _playground_data(config: PlaygroundConfig) -> tuple[Dataset, Dataset]:
    """The 2-D points of the configured toy set, and the same split as the chosen input features."""
    points = load_dataset(
        config.dataset, n=config.n_points, noise=config.noise, test_fraction=1.0 - config.train_fraction, seed=config.seed
    )
    data = Dataset(
        f"{config.dataset} ({', '.join(config.features)})",
        feature_matrix(points.x_train, config.features), points.y_train,
        feature_matrix(points.x_test, config.features), points.y_test,
        points.class_names, description=points.description,
    )
    return points, data
