"""`sweep()`: train every combination of a grid of settings × seeds, then say what made a difference.

A *task* is one training setup (:class:`TrainingTask` – a dataset and an architecture trained by
:func:`explainer.fit` – or a :class:`~explainer.learn.playground.PlaygroundConfig`); a *grid* maps a
setting (:data:`SETTINGS`) to the values to try. Every combination × seed is one independent unit
for the shared runner (:func:`explainer.run.run_units`): locally one after another, or as tasks on an
existing Ray cluster, streamed into an optional resumable results file. Before the grid starts, the
first run is trained and timed, giving the estimate (and the refusal when ``budget_seconds`` is too
small). Diverged runs are kept as rows with ``status="diverged"``.

Each unit's numbers depend only on the unit and the task: the seed fixes the initial weights (built
inside :func:`explainer._plumbing.isolated_rng`, so the caller's global RNG is untouched) and the
shuffling (``fit``'s own generator), so a repeat – or the same grid on Ray – gives the same table
(wall-clock seconds aside).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from explainer import stats
from explainer._plumbing import isolated_rng, json_ready
from explainer.data.datasets import TOY_SETS, Dataset, load_dataset
from explainer.errors import InputError
from explainer.hardware import resolve_device
from explainer.learn.architectures import ACTIVATIONS, build_model
from explainer.learn.playground import MAX_LAYERS, MAX_NEURONS, PlaygroundConfig, train_playground
from explainer.learn.training import OPTIMIZERS, TrainingRun, fit
from explainer.run import read_results, run_units
from explainer.stats import MIN_SAMPLES

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
#: Columns of the tidy table besides the settings.
RUN_COLUMNS = ("seed", "test_accuracy", "final_loss", "seconds", "flops", "status")
RESULTS_KIND = "explainer-sweep"
#: Fields of a run's row besides its settings and seed (what one run measured).
RESULT_FIELDS = (
    "test_accuracy", "final_loss", "seconds", "flops", "status", "test_loss", "epochs_run", "parameters",
    "flops_per_sample", "wall_seconds", "message", "curves", "grad_norm",
)
#: Weight initialisation draws from torch's global RNG (seeded inside isolated_rng): one thread at a time,
#: so two sweeps in one process (two dashboard sessions) cannot interleave their seeds.
_GLOBAL_RNG = threading.Lock()
#: Wall seconds per run are at least this (keeps estimates finite for instant runs).
MIN_RUN_SECONDS = 1e-3


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


@dataclass(frozen=True)
class SweepEstimate:
    """How long a grid will take, from one measured run (``seconds_per_run``, wall time of one run)."""

    runs: int
    configurations: int
    seeds: int
    remaining: int
    seconds_per_run: float
    workers: int = 1
    #: Mean epochs of the runs over the first run's epochs, when the grid varies epochs (time ∝ epochs).
    epochs_scale: float = 1.0

    @property
    def seconds(self) -> float:
        """Estimated seconds for the runs still to do (divided over ``workers`` in parallel)."""
        return self.remaining * self.seconds_per_run * self.epochs_scale / max(1, self.workers)

    def words(self) -> str:
        """The estimate in one sentence."""
        parallel = f" over {self.workers} workers" if self.workers > 1 else ""
        parallel += f" (scaled by the epochs, ×{self.epochs_scale:.2g})" if self.epochs_scale != 1.0 else ""
        return (
            f"{self.runs} runs ({self.configurations} configurations × {self.seeds} seed{'s' * (self.seeds != 1)}); "
            f"one run took {self.seconds_per_run:.2f} s, so about {_duration(self.seconds)}{parallel} for the "
            f"{self.remaining} still to do."
        )

    def to_dict(self) -> dict:
        """JSON-ready numbers."""
        return {**asdict(self), "seconds": self.seconds, "words": self.words()}


@dataclass(frozen=True)
class SweepProgress:
    """What ``progress`` receives: ``stage="estimate"`` once (with ``estimate``), then ``"run"`` after
    each finished run (with its ``row``)."""

    stage: str
    done: int
    total: int
    estimate: SweepEstimate | None = None
    row: dict | None = None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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


# ---------------------------------------------------------------- one run


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


def _model_spec(task: TrainingTask, settings: Mapping[str, Any]) -> dict:
    if task.arch not in ("mlp", "cnn"):
        return {}
    depth = settings.get("depth", task.depth)
    width = settings.get("width", task.width)
    spec: dict[str, Any] = {"activation": settings.get("activation", task.activation)}
    if task.arch == "mlp":
        if depth is not None or width is not None:
            spec["hidden"] = ((width or 64),) * (1 if depth is None else depth)
        return spec
    channels = settings.get("channels", task.channels)
    if depth is not None or channels is not None:
        spec["channels"] = tuple((channels or 16) * 2**i for i in range(2 if depth is None else depth))
    if width is not None:
        spec["hidden"] = width
    return spec


def _outcome(run: TrainingRun, wall: float) -> dict:
    history = run.history
    layers = list(dict.fromkeys(name for stats_ in history for name in stats_.grad_norm))
    return json_ready({
        "test_accuracy": run.test_accuracy,
        "final_loss": history[-1].train_loss if history else math.nan,
        "seconds": run.train_seconds,
        "flops": run.flops.training * run.samples_seen,
        "status": run.status,
        "test_loss": history[-1].test_loss if history else math.nan,
        "epochs_run": run.epochs,
        "parameters": run.parameters,
        "flops_per_sample": run.flops.training,
        "wall_seconds": max(wall, MIN_RUN_SECONDS),
        "message": run.message,
        "curves": {
            key: [getattr(stats_, key) for stats_ in history]
            for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy")
        },
        "grad_norm": {layer: [stats_.grad_norm.get(layer, math.nan) for stats_ in history] for layer in layers},
    })


class _Worker:
    """Runs one unit of a sweep; the dataset is loaded once per process (per noise level)."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.task = task_from_payload(payload)
        self._data: dict[float | None, Dataset] = {}
        # device None: a GPU when this process has one (a Ray worker given a GPU), else the CPU
        self.device = resolve_device(getattr(self.task, "device", None))
        with _GLOBAL_RNG, isolated_rng(0):
            self._warm_up()

    def _warm_up(self) -> None:
        """One epoch on a small slice, untimed: the first training in a process imports torch's lazy modules
        (FLOP counter, optimizer kernels: 1–10 s on a busy CPU) and probes the matmul peak, which would
        otherwise inflate the first run – the one the estimate is measured on."""
        if isinstance(self.task, PlaygroundConfig):
            train_playground(replace(self.task, epochs=1, n_points=40, grid_size=2), snapshots=0)
            return
        task = self.task
        full = self.dataset(task.noise)
        small = Dataset(full.name, full.x_train[:256], full.y_train[:256], full.x_test[:256], full.y_test[:256],
                        full.class_names)
        model = build_model(task.arch, small, **_model_spec(task, {}))
        fit(model, small, epochs=1, lr=task.lr, optimizer=task.optimizer, batch_size=task.batch_size,
            device=self.device, telemetry=task.telemetry)

    def dataset(self, noise: float | None) -> Dataset:
        assert isinstance(self.task, TrainingTask)
        if noise not in self._data:
            options = dict(self.task.data_options)
            if noise is not None:
                options["noise"] = noise
            self._data[noise] = load_dataset(self.task.dataset, **options)
        return self._data[noise]

    def __call__(self, unit: Mapping[str, Any]) -> dict:
        settings = {key: value for key, value in unit.items() if key != "seed"}
        seed = int(unit["seed"])
        start = time.perf_counter()
        if isinstance(self.task, PlaygroundConfig):
            run = self._playground(settings, seed)
        else:
            run = self._training(settings, seed)
        return _outcome(run, time.perf_counter() - start)

    def _training(self, settings: dict, seed: int) -> TrainingRun:
        task = self.task
        assert isinstance(task, TrainingTask)
        data = self.dataset(settings.get("noise", task.noise))
        with _GLOBAL_RNG, isolated_rng(seed):
            model = build_model(task.arch, data, seed=seed, **_model_spec(task, settings))
        options = {key: settings.get(key, getattr(task, key)) for key in ("epochs", "lr", "optimizer", "batch_size", "l1", "l2")}
        return fit(
            model, data, **options, target_accuracy=task.target_accuracy, device=self.device, seed=seed,
            telemetry=task.telemetry,
        )

    def _playground(self, settings: dict, seed: int) -> TrainingRun:
        config = self.task
        assert isinstance(config, PlaygroundConfig)
        changes = {key: value for key, value in settings.items() if key not in ("depth", "width")}
        if "depth" in settings or "width" in settings:
            width = settings.get("width", config.hidden[0] if config.hidden else 4)
            changes["hidden"] = (width,) * settings.get("depth", len(config.hidden))
        run_config = replace(config, **changes, seed=seed, grid_size=2)
        with _GLOBAL_RNG, isolated_rng(seed):
            return train_playground(run_config, snapshots=0).training


def make_worker(payload: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict]:
    """The runner's worker factory: ``work(unit) -> row numbers`` for the task in ``payload``.

    The last worker is kept per process, so a sweep's timed first run and the rest share the loaded data.
    """
    return _cached_worker(json.dumps(payload, sort_keys=True))


@functools.lru_cache(maxsize=1)
def _cached_worker(payload: str) -> _Worker:
    return _Worker(json.loads(payload))


# ---------------------------------------------------------------- results


def _label(settings: Mapping[str, Any]) -> str:
    return "[" + ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in settings.items()) + "]"


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


class SweepResults:
    """The runs of a sweep and what they show.

    ``runs`` holds one dict per run (settings, seed, numbers, curves, per-layer gradient norms);
    :meth:`table` is the tidy table, :meth:`summary` one row per configuration with a 95 % interval
    over seeds, :attr:`best` the best configuration by mean test accuracy and
    :attr:`indistinguishable` every other configuration whose paired (by seed) difference from it
    has an interval that includes zero.
    """

    def __init__(self, task: Task, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int], runs: Sequence[dict],
                 estimate: SweepEstimate | None = None, path: str | Path | None = None) -> None:
        self.task = task
        self.grid = {name: list(values) for name, values in grid.items()}
        self.settings = list(self.grid)
        self.seeds = list(seeds)
        self.runs = [dict(run) for run in runs]
        self.estimate = estimate
        self.path = Path(path) if path is not None else None
        self._summary: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"SweepResults({len(self.runs)} runs, {len(self.configurations())} configurations × "
                f"{len(self.seeds)} seeds, best {_label(self.best) if self.runs else None})")

    def configurations(self) -> list[dict]:
        """The distinct settings, in grid order."""
        seen: dict[tuple, dict] = {}
        for run in self.runs:
            settings = {name: run[name] for name in self.settings}
            seen.setdefault(tuple(settings.values()), settings)
        return list(seen.values())

    def table(self) -> pd.DataFrame:
        """One row per run: the settings, seed, test accuracy, final (training) loss, seconds, FLOPs, status."""
        columns = [*self.settings, *RUN_COLUMNS, "epochs_run", "parameters", "message"]
        frame = pd.DataFrame([{key: run.get(key) for key in columns} for run in self.runs], columns=columns)
        for key in ("test_accuracy", "final_loss", "seconds", "flops"):
            frame[key] = pd.to_numeric(frame[key], errors="coerce")
        return frame

    def run(self, seed: int | None = None, **settings: Any) -> dict:
        """The run with these settings and seed (default: the first seed), curves included."""
        seed = self.seeds[0] if seed is None else seed
        for run in self.runs:
            if run["seed"] == seed and all(run.get(key) == value for key, value in settings.items()):
                return run
        raise InputError(f"No run with {_label(settings)}, seed {seed}; the grid has {self.grid} × seeds {self.seeds}.")

    def _accuracies(self, settings: Mapping[str, Any]) -> dict[int, float]:
        return {run["seed"]: _number(run.get("test_accuracy")) for run in self.runs if all(run[key] == value for key, value in settings.items())}

    def summary(self) -> pd.DataFrame:
        """One row per configuration: settings, mean test accuracy with its 95 % interval over seeds
        (``ci_low``/``ci_high``, NaN with one seed), ``n`` runs, ``diverged`` runs, mean seconds."""
        if self._summary is None:
            rows = []
            for settings in self.configurations():
                runs = [run for run in self.runs if all(run[key] == value for key, value in settings.items())]
                interval = stats.mean_interval([_number(run["test_accuracy"]) for run in runs])
                rows.append({
                    **settings, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                    "n": interval.n, "diverged": sum(run["status"] == "diverged" for run in runs),
                    "seconds": sum(_number(run["seconds"]) for run in runs) / len(runs),
                })
            self._summary = pd.DataFrame(rows, columns=[*self.settings, "mean", "ci_low", "ci_high", "n", "diverged", "seconds"])
        return self._summary.copy()  # a caller may change its copy; verdict() reads the cached one

    @property
    def best(self) -> dict:
        """The configuration with the highest mean test accuracy (ties: the faster one)."""
        summary = self.summary()
        if summary.empty:
            raise InputError("This sweep has no runs yet.")
        ranked = summary.assign(_mean=summary["mean"].fillna(-1.0)).sort_values(["_mean", "seconds"], ascending=[False, True], kind="stable")
        return {name: _plain(ranked.iloc[0][name]) for name in self.settings}

    def difference(self, settings: Mapping[str, Any], other: Mapping[str, Any]) -> stats.Interval:
        """Mean paired difference of test accuracy (``settings`` − ``other``) over the seeds both ran."""
        a, b = self._accuracies(settings), self._accuracies(other)
        common = [seed for seed in a if seed in b]
        return stats.paired_difference([a[s] for s in common], [b[s] for s in common])

    def best_of(self) -> stats.Best:
        """:attr:`best` against every other configuration, paired by seed (accuracy points), Holm over them
        all (:func:`explainer.stats.decide_best`): a single winner only where it beats every other one."""
        best = self.best
        top = self._accuracies(best)
        comparisons = []
        for settings in self.configurations():
            if settings != best:
                other = self._accuracies(settings)
                common = [seed for seed in self.seeds if seed in top and seed in other]
                comparisons.append(stats.compare(
                    _label(best), [100 * top[s] for s in common], _label(settings), [100 * other[s] for s in common],
                    higher_is_better=True, over="seeds"))
        return stats.decide_best(_label(best), stats.adjust(comparisons) if comparisons else [])

    @property
    def indistinguishable(self) -> list[dict]:
        """Every other configuration :attr:`best` does not beat after Holm's adjustment (all of them with fewer
        than ``stats.MIN_SAMPLES`` seeds)."""
        best = self.best
        tied = set(self.best_of().tied)
        return [settings for settings in self.configurations() if settings != best and _label(settings) in tied]

    def variance_shares(self) -> stats.VarianceShares | None:
        """Type-II ANOVA of test accuracy on the varied settings (:func:`explainer.stats.variance_shares`):
        each setting's share, their interaction, the rest (seed noise), F-test p-values (Holm) and whether
        the grid is balanced (every configuration with the same number of finished runs). None when nothing varies."""
        frame = self.table()
        varied = [name for name in self.settings if frame[name].nunique() > 1]
        if not varied:
            return None
        return stats.variance_shares(frame.astype({name: str for name in varied}), varied, "test_accuracy")

    def share_of_variance(self) -> dict[str, float]:
        """The shares of :meth:`variance_shares` as one dict: each setting, ``"interactions"`` and ``"seeds"``."""
        shares = self.variance_shares()
        if shares is None:
            return {}
        result = {name: value for name, value in shares.shares.items() if name != stats.INTERACTION}
        result["interactions"] = shares.shares.get(stats.INTERACTION, 0.0)
        result["seeds"] = shares.residual
        return result

    def verdict(self) -> str:
        """What the grid shows, in plain words; no winner is named within seed noise."""
        return _verdict(self)

    def to_dict(self, curves: bool = False) -> dict:
        """JSON: ``runs``, ``summary``, ``best``, ``indistinguishable``, ``verdict`` (+ the grid, share of
        variance and estimate). ``curves=True`` keeps each run's per-epoch curves and gradient norms."""
        drop = () if curves else ("curves", "grad_norm")
        return json_ready({
            "runs": [{key: value for key, value in run.items() if key not in drop} for run in self.runs],
            "summary": self.summary().to_dict(orient="records"),
            "best": self.best,
            "indistinguishable": self.indistinguishable,
            "verdict": self.verdict(),
            "grid": self.grid,
            "seeds": self.seeds,
            "task": _task_payload(self.task),
            "share_of_variance": self.share_of_variance(),
            "variance": shares.to_dict() if (shares := self.variance_shares()) else None,
            "best_of": self.best_of().to_dict() if self.runs else None,
            "enough": stats.enough(len(self.seeds)),
            "estimate": self.estimate.to_dict() if self.estimate else None,
        })


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _verdict(results: SweepResults) -> str:
    summary = results.summary()
    best = results.best
    row = summary[(summary[results.settings] == pd.Series(best)).all(axis=1)].iloc[0]
    n = len(results.seeds)
    parts = []
    decision = results.best_of()
    where = (f"{_pct(row['mean'])} (95 % CI {_pct(row['ci_low'])} to {_pct(row['ci_high'])}, {n} seeds)"
             if n >= 2 else f"{_pct(row['mean'])} (1 seed)")
    if len(summary) == 1:
        parts.append(f"One configuration: {_label(best)} at {where}.")
    elif n < 2:
        parts.append(f"One seed: no verdict – add seeds (run ≥ {stats.MIN_SAMPLES}). "
                     f"The highest mean accuracy was {_label(best)} at {_pct(row['mean'])}.")
    elif not decision.enough:
        runner = min(decision.comparisons, key=lambda c: abs(c.difference.mean))
        parts.append(f"No winner named: {_label(best)} had the highest mean, {where}; against the runner-up "
                     f"{runner.b}, {runner.agree} of {runner.n} seeds agree (too few to name a winner: run ≥ "
                     f"{stats.MIN_SAMPLES} seeds).")
    elif decision.winner:
        closest = max(decision.comparisons, key=lambda c: c.p_adjusted)
        parts.append(f"Best: {_label(best)} at {where}, ahead of every other configuration after Holm's adjustment "
                     f"over {closest.family} comparisons. Closest: {closest.words(' points')}")
    else:
        others = results.indistinguishable
        names = "; ".join(_label(s) for s in others[:5]) + (f"; and {len(others) - 5} more" if len(others) > 5 else "")
        parts.append(
            f"No single winner: {_label(best)} had the highest mean, {where}, but {len(others)} other "
            f"configuration{'s' if len(others) > 1 else ''} cannot be told apart from it after Holm's adjustment "
            f"(paired by seed): {names}."
        )
    parts.extend(_diverged_words(summary, results.settings))
    shares = results.variance_shares()
    if shares is not None:
        mains = sorted(((k, v) for k, v in shares.shares.items() if k != stats.INTERACTION), key=lambda item: -item[1])
        significant = set(shares.significant())

        def mark(name: str, label: str, share: float) -> str:
            return f"{label} {share:.0%}" + ("" if name in significant or not n > 1 else " (not significant)")

        pieces = [mark(name, name, share) for name, share in mains]
        if stats.INTERACTION in shares.shares:
            pieces.append(mark(stats.INTERACTION, "their interaction", shares.shares[stats.INTERACTION]))
        if n > 1:
            pieces.append(f"seed noise {shares.residual:.0%}")
        listed = ", ".join(pieces[:-1]) + f" and {pieces[-1]}" if len(pieces) > 1 else pieces[0]
        balance = "" if shares.balanced else (" The grid is unbalanced (configurations have different numbers of "
                                              "finished runs): Type-II sums of squares, shares are per term.")
        parts.append(f"Share of the spread in test accuracy (Type-II ANOVA, F-tests Holm-adjusted): {listed}.{balance}")
    return " ".join(parts)


def _runner_up(summary: pd.DataFrame, settings: list[str], best: dict) -> dict:
    others = summary[~(summary[settings] == pd.Series(best)).all(axis=1)]
    top = others.sort_values("mean", ascending=False, kind="stable").iloc[0]
    return {name: _plain(top[name]) for name in settings}


def _diverged_words(summary: pd.DataFrame, settings: list[str]) -> list[str]:
    diverged = summary[summary["diverged"] > 0]
    if diverged.empty:
        return []
    listed = "; ".join(f"{_label({k: _plain(r[k]) for k in settings})} ({int(r['diverged'])} of {int(r['n'])})"
                       for _, r in diverged.head(6).iterrows())
    more = f"; and {len(diverged) - 6} more" if len(diverged) > 6 else ""
    return [f"Diverged (kept in the table): {listed}{more}."]


# ---------------------------------------------------------------- the sweep


def free_cores() -> int:
    """CPU cores not busy with other work right now (cores minus the 1-minute load average), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, round(cores - load)))


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _results_config(task: Task, grid: Mapping[str, Sequence[Any]]) -> dict:
    return {"kind": RESULTS_KIND, "settings": list(grid), "task": _task_payload(task)}


def _finished(path: Path, config: dict) -> set[tuple]:
    if not path.exists() or path.stat().st_size == 0:
        return set()
    stored, rows = read_results(path)
    if stored != config:
        return set()  # run_units names the differing keys
    return {tuple(sorted((k, v) for k, v in row.items() if k in config["settings"] or k == "seed")) for row in rows}


def _shrink_advice(estimate: SweepEstimate, grid: Mapping[str, Sequence[Any]], budget: float) -> str:
    fits = max(0, math.floor(budget * max(1, estimate.workers) / (estimate.seconds_per_run * estimate.epochs_scale)))
    advice = [f"about {fits} run{'s' * (fits != 1)} fit"]
    if estimate.seeds > 1:
        per_seed = estimate.configurations
        seeds = fits // per_seed
        if seeds >= 1:
            advice.append(f"use seeds={seeds} (--seeds {seeds})")
    largest = max(grid, key=lambda name: len(grid[name]))
    if len(grid[largest]) > 1:
        advice.append(f"try fewer values of {largest} (now {len(grid[largest])})")
    advice.append("train fewer epochs, or raise the budget")
    return "; ".join(advice)


def sweep(
    task: Task,
    grid: Mapping[str, Sequence[Any]],
    *,
    seeds: int | Sequence[int] = MIN_SAMPLES,
    out: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    budget_seconds: float | None = None,
    progress: bool | Callable[[SweepProgress], None] = True,
    threads: int | None = None,
) -> SweepResults:
    """Train every combination of ``grid`` × ``seeds`` on ``task`` and return the results.

    ``task`` is a :class:`TrainingTask` or a ``PlaygroundConfig``; ``grid`` maps settings
    (:data:`SETTINGS`) to values, e.g. ``{"lr": [1e-3, 1e-2, 1e-1], "activation": ["relu", "tanh"]}``;
    ``seeds`` is a count (seeds 0..n-1) or a list. The first run is trained and timed first; the
    estimate goes to ``results.estimate`` and, with ``progress=True`` (the default), to stderr before a tqdm
    bar (``False``: silent; a callable gets ``SweepProgress("estimate", ...)`` then one per run); with
    ``budget_seconds`` a grid whose estimate does not fit is refused with an :class:`InputError`
    saying how to shrink it. ``out=FILE`` streams every finished run into a results file; a rerun
    (also with more values or seeds) skips the finished runs. ``backend="ray"`` sends runs to an
    existing Ray cluster at ``address`` (default ``"auto"``), one CPU per run (and one GPU per run
    when the cluster has GPUs). ``threads`` is the number of torch threads for local runs (default:
    the free cores; restored afterwards).
    """
    checked = check_grid(task, grid)
    seed_list = _seed_list(seeds)
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds, got {budget_seconds!r}.")
    if backend not in ("local", "ray"):
        raise InputError(f"Unknown backend {backend!r}; choose 'local' or 'ray'.")
    if backend == "local" and address is not None:
        raise InputError("address= is for backend='ray'; the local backend runs in this process.")
    units = make_units(checked, seed_list)
    report_event: Callable[[SweepProgress], None] | None = (
        _tqdm_progress() if progress is True else progress if callable(progress) else None)
    with tempfile.TemporaryDirectory(prefix="explainer-sweep-") as scratch, _cluster(backend, address) as cluster:
        path = Path(out) if out is not None else Path(scratch) / "sweep.jsonl"
        config = _results_config(task, checked)
        gpus = 1 if cluster.get("GPU", 0) >= 1 else 0
        worker = functools.partial(make_worker, _task_payload(task))
        runner = functools.partial(run_units, worker=worker, out=path, config=config, backend=backend, address=address,
                                   resources={"num_cpus": 1, "num_gpus": gpus})
        # The first run is timed in this process, on Ray too (no round of actor start-ups for one run). On a
        # CPU-only cluster its row joins the results file: a worker computes the same numbers on its 1 thread.
        kept = backend == "local" or not gpus
        first_runner = functools.partial(run_units, worker=worker, out=path if kept else Path(scratch) / "first.jsonl",
                                         config=config)
        local_threads = (threads if threads is not None else free_cores()) if backend == "local" else 1
        with _torch_threads(local_threads):
            estimate = _first_run(first_runner, units, path, config, len(seed_list), int(cluster.get("CPU", 1)), kept)
        if report_event is not None:
            report_event(SweepProgress("estimate", len(units) - estimate.remaining, len(units), estimate=estimate))
        if budget_seconds is not None and estimate.seconds > budget_seconds:
            raise InputError(
                f"The grid will not fit the budget of {budget_seconds:g} s: {estimate.words()} "
                f"To shrink it: {_shrink_advice(estimate, checked, float(budget_seconds))}."
            )

        def report(done_count: int, total: int, row: dict) -> None:
            if report_event is not None:
                report_event(SweepProgress("run", done_count, total, row=row))

        with _torch_threads(local_threads if backend == "local" else None):
            rows = runner(units, progress=report)
    return SweepResults(task, checked, seed_list, rows, estimate=estimate, path=out)


def _tqdm_progress() -> Callable[[SweepProgress], None]:
    """A progress callback that prints the estimate to stderr, then drives a tqdm bar."""
    from tqdm.auto import tqdm

    bars: list[Any] = []

    def report(event: SweepProgress) -> None:
        if event.stage == "estimate" and event.estimate is not None:
            print(f"sweep: {event.estimate.words()}", file=sys.stderr)
            bars.append(tqdm(total=event.total, initial=event.done, desc="sweep", unit="run", file=sys.stderr))
        elif bars:
            bars[0].update(event.done - bars[0].n)  # resumed rows are reported too: move to ``done``
            if event.done >= event.total:
                bars[0].close()

    return report


def _first_run(runner: Callable[..., list[dict]], units: list[dict], path: Path, config: dict, seeds: int,
               workers: int, kept: bool) -> SweepEstimate:
    """Train (or find in the results file) the first unit and estimate the rest from its wall time;
    ``kept``: the first run's row counts as done (it went into the results file)."""
    done = _finished(path, config)
    remaining = sum(tuple(sorted(unit.items())) not in done for unit in units)
    first_is_new = kept and tuple(sorted(units[0].items())) not in done
    first = runner(units[:1])[0]
    return SweepEstimate(
        runs=len(units), configurations=len(units) // seeds, seeds=seeds, remaining=remaining - first_is_new,
        seconds_per_run=float(first["wall_seconds"]), workers=max(1, workers), epochs_scale=_epochs_scale(units),
    )


def _epochs_scale(units: list[dict]) -> float:
    if "epochs" not in units[0]:
        return 1.0
    return sum(unit["epochs"] for unit in units) / len(units) / units[0]["epochs"]


@contextmanager
def _cluster(backend: str, address: str | None) -> Iterator[dict[str, float]]:
    """For ``backend="ray"``: stay connected to the cluster for the whole sweep; yields its resources."""
    if backend != "ray":
        yield {"CPU": 1}
        return
    from explainer.run.runner import _connect, _import_ray

    ray = _import_ray()
    connected = _connect(ray, address)
    try:
        yield dict(ray.cluster_resources())
    finally:
        if connected:
            ray.shutdown()


def estimate_sweep(task: Task, grid: Mapping[str, Sequence[Any]], *, seeds: int | Sequence[int] = 3,
                   threads: int | None = None) -> SweepEstimate:
    """Train and time the grid's first run only and return the estimate for the whole grid."""
    checked = check_grid(task, grid)
    seed_list = _seed_list(seeds)
    units = make_units(checked, seed_list)
    with _torch_threads(threads):
        row = make_worker(_task_payload(task))(units[0])
    return SweepEstimate(len(units), len(units) // len(seed_list), len(seed_list), len(units), float(row["wall_seconds"]),
                         epochs_scale=_epochs_scale(units))


def open_sweep(path: str | Path) -> SweepResults:
    """The results of a sweep from its results file (written by :func:`sweep` or ``explainer sweep --out``)."""
    config, rows = read_results(path)
    if config.get("kind") != RESULTS_KIND:
        raise InputError(f"{path} is not a sweep results file (its config kind is {config.get('kind')!r}); "
                         "make one with `explainer sweep --out FILE`.")
    names = list(config["settings"])
    grid = {name: list(dict.fromkeys(row[name] for row in rows)) for name in names}
    seeds = sorted({int(row["seed"]) for row in rows})
    ordered = sorted(rows, key=lambda row: ([grid[n].index(row[n]) for n in names], seeds.index(int(row["seed"]))))
    return SweepResults(task_from_payload(config["task"]), grid, seeds, ordered, path=path)
