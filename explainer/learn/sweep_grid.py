"""What a sweep trains: the task, the settings a grid may vary, and the checked grid × seeds as the runner's units."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from explainer.data.datasets import TOY_SETS
from explainer.errors import InputError
from explainer.jsonable import json_ready
from explainer.learn.architectures import ACTIVATIONS
from explainer.learn.playground import MAX_LAYERS, MAX_NEURONS, PlaygroundConfig
from explainer.learn.training_options import OPTIMIZERS

#: Settings a grid may vary, with the type of their values.
SETTINGS: dict[str, type] = {
    "lr": float,
    "optimizer": str,
    "activation": str,
    "depth": int,
    "width": int,
    "channels": int,
    "batch_size": int,
    "l1": float,
    "l2": float,
    "epochs": int,
    "noise": float,
}
#: What each setting means (CLI help and the dashboard).
SETTING_HELP: dict[str, str] = {
    "lr": "learning rate",
    "optimizer": f"optimizer ({', '.join(OPTIMIZERS)})",
    "activation": f"activation ({', '.join(ACTIVATIONS)})",
    "depth": "hidden layers (mlp, playground) or convolutions (cnn)",
    "width": "neurons per hidden layer (the cnn's fully connected layer)",
    "channels": "channels of the first convolution; each next one doubles (cnn)",
    "batch_size": "batch size",
    "l1": "L1 regularization strength",
    "l2": "L2 regularization strength",
    "epochs": "most epochs to train",
    "noise": "dataset noise, 0–0.5 (2-D sets and the playground)",
}


@dataclass(frozen=True)
class TrainingTask:
    """One training setup for :func:`sweep`: ``fit`` on ``dataset`` with a fresh ``arch`` network.

    ``dataset`` is any :func:`explainer.load_dataset` name (``digits``, a 2-D set such as ``circle``,
    ``imagefolder:PATH``, ``mnist``/``fashion_mnist``/``cifar10`` where their files are present);
    ``data_options`` go to ``load_dataset`` (e.g. ``{"limit": 5000}``). ``arch`` is ``"mlp"``,
    ``"cnn"`` or a timm name (then only the optimizer settings can vary). ``depth``/``width``/
    ``channels`` left at ``None`` mean the builders' defaults (mlp: one hidden layer of 64; cnn:
    conv16-conv32, fc64). ``device=None`` trains on a GPU where the process has one (a Ray worker
    given a GPU), else on the CPU. The other fields are ``fit``'s options; a grid overrides any of them.
    """

    dataset: str = "digits"
    arch: str = "mlp"
    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 32
    activation: str = "relu"
    depth: int | None = None
    width: int | None = None
    channels: int | None = None
    l1: float = 0.0
    l2: float = 0.0
    noise: float | None = None
    target_accuracy: float | None = None
    device: str | None = None
    telemetry: str = "epoch"
    data_options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A few words, e.g. ``"mlp on digits, 10 epochs"``."""
        return f"{self.arch} on {self.dataset}, {self.epochs} epochs"


Task = TrainingTask | PlaygroundConfig


# ---------------------------------------------------------------- checking the grid


def parse_setting(name: str, text: str) -> list:
    """``"lr", "0.001,0.01"`` → ``[0.001, 0.01]``: comma-separated values of a setting, typed."""
    if name not in SETTINGS:
        raise InputError(f"Unknown setting {name!r} to vary; choose from: {', '.join(SETTINGS)}.")
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise InputError(f"Give values for {name}, e.g. --grid {name}=1,2 (comma-separated).")
    kind = SETTINGS[name]
    try:
        return [kind(float(part)) if kind is int and float(part).is_integer() else kind(part) for part in parts]
    except ValueError:
        raise InputError(f"{name} takes {kind.__name__} values; could not read {text!r}.") from None


def _check_value(name: str, given: Any) -> Any:
    kind = SETTINGS[name]
    value: Any = given
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"{name} values must be {kind.__name__}s, got {value!r}.")
    return _check_range(name, value)


def _check_range(name: str, value: Any) -> Any:
    kind = SETTINGS[name]
    bad = (
        (name == "optimizer" and value not in OPTIMIZERS) or (name == "activation" and value not in ACTIVATIONS)
        or (kind is int and value < 1) or (name == "lr" and not (math.isfinite(value) and value > 0))
        or (name in ("l1", "l2") and not (math.isfinite(value) and value >= 0))
        or (name == "noise" and not 0.0 <= value <= 0.5)
    )
    if bad:
        allowed = {"optimizer": ", ".join(OPTIMIZERS), "activation": ", ".join(ACTIVATIONS), "noise": "0 to 0.5",
                   "lr": "positive numbers", "l1": "numbers ≥ 0", "l2": "numbers ≥ 0"}.get(name, "whole numbers ≥ 1")
        raise InputError(f"{name}={value!r} is not allowed; {name} takes {allowed}.")
    return value


def check_grid(task: Task, grid: Mapping[str, Sequence[Any]]) -> dict[str, list]:
    """The grid with typed, checked values (strings are parsed as comma-separated lists)."""
    if not isinstance(grid, Mapping) or not grid:
        raise InputError("grid maps a setting to the values to try, e.g. {'lr': [0.001, 0.01, 0.1]}.")
    checked: dict[str, list] = {}
    for name, values in grid.items():
        if name not in SETTINGS:
            raise InputError(f"Unknown setting {name!r} to vary; choose from: {', '.join(SETTINGS)}.")
        listed = parse_setting(name, values) if isinstance(values, str) else list(
            values if isinstance(values, Sequence) else [values])
        typed = [_check_value(name, value) for value in listed]
        if not typed:
            raise InputError(f"grid[{name!r}] is empty; give at least one value.")
        if len(set(typed)) != len(typed):
            raise InputError(f"grid[{name!r}] repeats a value: {typed!r}.")
        checked[name] = typed
    _check_applicable(task, checked)
    return checked


def _check_applicable(task: Task, grid: dict[str, list]) -> None:
    if isinstance(task, PlaygroundConfig):
        if "channels" in grid:
            raise InputError("The playground has no convolutions; vary depth or width instead of channels.")
        if any(v > MAX_LAYERS for v in grid.get("depth", [])) or any(v > MAX_NEURONS for v in grid.get("width", [])):
            raise InputError(f"The playground allows depth ≤ {MAX_LAYERS} and width ≤ {MAX_NEURONS}.")
        return
    if not isinstance(task, TrainingTask):
        raise InputError(f"task must be a TrainingTask or a PlaygroundConfig, got {type(task).__name__}.")
    if "noise" in grid and task.dataset not in TOY_SETS:
        raise InputError(f"noise varies the 2-D sets ({', '.join(TOY_SETS)}); {task.dataset!r} has no noise setting.")
    if task.arch == "mlp" and "channels" in grid:
        raise InputError("channels applies to arch='cnn'; an mlp varies depth and width.")
    architecture = {"activation", "depth", "width", "channels"} & set(grid)
    if task.arch not in ("mlp", "cnn") and architecture:
        raise InputError(f"{', '.join(sorted(architecture))} vary arch 'mlp' or 'cnn', not the timm model {task.arch!r}.")


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise InputError(f"seeds must be at least 1, got {seeds}; 2 or more give intervals, ≥ 5 a verdict.")
        return list(range(seeds))
    values: list[Any] = [] if isinstance(seeds, (bool, int)) else list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values) or len(set(values)) != len(values):
        raise InputError(f"seeds is a count (e.g. 3) or distinct non-negative integers, got {seeds!r}.")
    return values


def make_units(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> list[dict]:
    """Every combination of the grid's values × seed, as the runner's units (configurations outermost)."""
    names = list(grid)
    return [
        {**dict(zip(names, combination)), "seed": seed}
        for combination in itertools.product(*(grid[name] for name in names))
        for seed in seeds
    ]


def _task_payload(task: Task) -> dict:
    if isinstance(task, PlaygroundConfig):
        return {"kind": "playground", "task": json_ready(asdict(task))}
    return {"kind": "training", "task": json_ready({**asdict(task), "data_options": dict(task.data_options)})}


def task_from_payload(payload: Mapping[str, Any]) -> Task:
    """The task a results file's config describes (the inverse of what :func:`sweep` stores)."""
    values = dict(payload["task"])
    if payload.get("kind") == "playground":
        return PlaygroundConfig(**values)
    names = {f.name for f in fields(TrainingTask)}
    return TrainingTask(**{k: v for k, v in values.items() if k in names})
