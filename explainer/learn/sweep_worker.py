"""One unit of a sweep: train a grid point with its seed (in this process or a Ray worker) and return the run's row."""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from explainer.data.datasets import Dataset, load_dataset
from explainer.hardware import resolve_device
from explainer.jsonable import json_ready
from explainer.learn.architectures import build_model
from explainer.learn.playground import PlaygroundConfig, train_playground
from explainer.learn.sweep_grid import TrainingTask, task_from_payload
from explainer.learn.training import fit
from explainer.learn.training_run import TrainingRun
from explainer.rng import isolated_rng

#: Weight initialisation draws from torch's global RNG (seeded inside isolated_rng): one thread at a time,
#: so two sweeps in one process (two dashboard sessions) cannot interleave their seeds.
_GLOBAL_RNG = threading.Lock()
#: Wall seconds per run are at least this (keeps estimates finite for instant runs).
MIN_RUN_SECONDS = 1e-3


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
