"""Transfer learning versus training from scratch with 1–50 labelled examples per class: the experiment.

`compare_transfer` turns a study into units – one per strategy × shot level × seed – and hands them
to :func:`explainer.run.run_units`, which runs them here or on a Ray cluster and streams every row to
a resumable results file. A unit's row depends only on the unit and the task's settings (its sample
and its seed), so both backends give the same numbers.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainer.data.datasets import Dataset, load_dataset
from explainer.errors import InputError
from explainer.hardware import resolve_device
from explainer.models import BUNDLED_MODEL, Classifier
from explainer.rng import isolated_rng
from explainer.run import Progress, finished_keys, read_results, run_units, unit_key
from explainer.run.long_call import duration
from explainer.stats import MIN_SAMPLES
from explainer.transfer.feature_cache import tensor_digest
from explainer.transfer.learners import PROBE_C
from explainer.transfer.results import TransferResults, open_results
from explainer.transfer.strategies import STRATEGIES, Params, Strategy, check_strategies, get_strategy
from explainer.transfer.task import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_LR,
    DEFAULT_STEPS,
    RECIPE_VERSION,
    SMALL_CNN_LR,
    TransferTask,
)

__all__ = [  # open_results, STRATEGIES and TransferResults are re-exported for code that imported them from here
    "DEFAULT_SHOTS", "STRATEGIES", "TaskSpec", "TransferResults", "compare_transfer", "few_shot_sample", "open_results",
    "resume_results", "run_unit", "study_config", "transfer_worker",
]
DEFAULT_SHOTS = (1, 2, 5, 10, 20, 50)
Row = dict[str, Any]


def few_shot_sample(labels: torch.Tensor, num_classes: int, shots: int, seed: int) -> np.ndarray:
    """Sorted indices of ``shots`` examples per class, drawn with ``seed``.

    Each class's examples are shuffled once per seed and the first ``shots`` taken, so the sample
    for 5 shots contains the one for 2 shots: a curve over shot levels adds data, not new luck.
    """
    rng = np.random.default_rng(seed)
    array = labels.cpu().numpy()
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(array == c))[:shots] for c in range(num_classes)]))


# ------------------------------------------------------------------------------ the worker
@dataclass(frozen=True)
class TaskSpec:
    """Plain, picklable settings from which every process builds the same :class:`TransferTask`."""

    dataset: str | Dataset
    model: str | Classifier
    image_size: int = DEFAULT_IMAGE_SIZE
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str | None = None
    cache_dir: str | None = None

    def task(self) -> TransferTask:
        """The task these settings describe (the dataset loaded, the backbone loaded on first use)."""
        data = self.dataset if isinstance(self.dataset, Dataset) else load_dataset(self.dataset)
        device = resolve_device(self.model.device if isinstance(self.model, Classifier) else self.device)
        return TransferTask(
            data, self.model, device, image_size=self.image_size, steps=self.steps, lr=self.lr,
            batch_size=self.batch_size, cache_dir=self.cache_dir,
        )


#: Share of each class's support held out as the validation split (at least one image; none at 1 shot).
VALIDATION_SHARE = 0.2


def validation_split(labels: torch.Tensor, support: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(train, validation)`` indices carved from ``support``: per class max(1, ⌊0.2·k⌋) of its k images,
    drawn with ``seed``; None when some class has a single image (1 shot: there is nothing to hold out)."""
    rng = np.random.default_rng([seed, 1])
    array = labels.cpu().numpy()
    held: list[np.ndarray] = []
    for c in np.unique(array[support]):
        members = support[array[support] == c]
        if members.size < 2:
            return None
        held.append(rng.permutation(members)[: max(1, int(members.size * VALIDATION_SHARE))])
    validation = np.sort(np.concatenate(held))
    return np.setdiff1d(support, validation), validation


def choose_params(task: TransferTask, strategy: Strategy, support: np.ndarray, seed: int) -> tuple[Params, list[float]]:
    """The strategy's grid entry with the best accuracy on a validation split of ``support`` (the first
    on ties) and every entry's validation accuracy; the grid's first (default) entry at 1 shot."""
    split = validation_split(task.data.y_train, support, seed)
    if split is None or len(strategy.grid) == 1:
        return dict(strategy.grid[0]), []
    train, validation = split
    truth = task.data.y_train[validation].numpy()
    scores = []
    for params in strategy.grid:
        with isolated_rng(seed):
            scores.append(float((strategy.run(task, train, seed, dict(params), validation) == truth).mean()))
    return dict(strategy.grid[int(np.argmax(scores))]), [round(score, 6) for score in scores]


def run_unit(task: TransferTask, unit: Mapping[str, Any]) -> Row:
    """One unit – ``{"strategy", "shots", "seed"}`` – tuned on a validation split, retrained on the whole
    support and scored: ``{"accuracy", "correct", "params", "validation", "seconds", "device"}``.

    ``correct`` holds one 0/1 per test image (the verdict's intervals count the test images' sampling);
    ``params`` the chosen grid entry, ``validation`` each grid entry's validation accuracy. Every training
    runs inside an isolated global RNG seeded with the seed, so the row depends only on the unit and the task.
    """
    strategy = get_strategy(str(unit["strategy"]))
    seed = int(unit["seed"])
    support = few_shot_sample(task.data.y_train, task.data.num_classes, int(unit["shots"]), seed)
    start = time.perf_counter()
    params, validation = choose_params(task, strategy, support, seed)
    with isolated_rng(seed):
        predictions = strategy.run(task, support, seed, params, None)
    correct = np.asarray(predictions) == task.data.y_test.numpy()
    return {"accuracy": round(float(correct.mean()), 6), "correct": "".join("1" if c else "0" for c in correct),
            "params": params, "validation": validation, "seconds": round(time.perf_counter() - start, 4),
            "device": str(task.device)}


def estimate_seconds(task: TransferTask, units: Sequence[Mapping[str, Any]]) -> float:
    """Seconds the ``units`` should take here: each strategy is timed once on 2 training steps at the
    smallest shot level, scaled by the steps (or fits) its units' searches and final trainings need."""
    per_strategy: dict[str, float] = {}
    probe_task = replace(task, steps=2)
    probe_task._classifier, probe_task._features = task._classifier, task._features
    total = 0.0
    for unit in units:
        strategy = get_strategy(str(unit["strategy"]))
        if strategy.name not in per_strategy:
            support = few_shot_sample(task.data.y_train, task.data.num_classes, 1, 0)
            start = time.perf_counter()
            with isolated_rng(0):
                strategy.run(probe_task, support, 0, dict(strategy.grid[0]), support[:1])
            per_strategy[strategy.name] = time.perf_counter() - start
        searched = int(unit["shots"]) >= 2 and len(strategy.grid) > 1
        if "steps_scale" in strategy.grid[0]:
            scales = 1.0 + (sum(float(p["steps_scale"]) for p in strategy.grid) if searched else 0.0)
            total += per_strategy[strategy.name] / 2 * task.steps * scales
        else:
            total += per_strategy[strategy.name] * (1 + (len(strategy.grid) if searched else 0))
    return total


def transfer_worker(spec: TaskSpec) -> Callable[[Mapping[str, Any]], Row]:
    """The worker factory for :func:`explainer.run.run_units`: builds the task once, returns ``work(unit)``."""
    task = spec.task()
    return functools.partial(run_unit, task)


# ------------------------------------------------------------------------------ validation
def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return int(value)


def _check_shots(shots: Iterable[int] | int, data: Dataset) -> list[int]:
    levels = [shots] if isinstance(shots, (int, np.integer)) else list(shots)
    if not levels:
        raise InputError("shots is empty; give labelled examples per class, e.g. shots=(1, 5, 20).")
    levels = sorted({_check_positive_int("Each shots value", k) for k in levels})
    counts = torch.bincount(data.y_train, minlength=data.num_classes)
    smallest = int(counts.argmin())
    available = int(counts[smallest])
    if levels[-1] > available:
        raise InputError(
            f"shots={levels[-1]} asks for more labelled examples per class than {data.name!r} has: class "
            f"{data.class_names[smallest]!r} has only {available} training images. Use shots ≤ {available}."
        )
    return levels


def _check_dataset(dataset: str | Dataset) -> Dataset:
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if not data.is_image:
        raise InputError(
            f"Dataset {data.name!r} holds {data.input_shape}-shaped points, not images; transfer needs image "
            "data such as 'textures', 'digits', 'cifar10' or 'imagefolder:PATH'."
        )
    return data


def _check_recipe(image_size: object, steps: object, batch_size: object, lr: object) -> tuple[int, int, int, float]:
    size = _check_positive_int("image_size", image_size)
    if size < 16:
        raise InputError(f"image_size must be at least 16 pixels, got {size}; 64 works for pretrained features.")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise InputError(f"lr must be positive, got {lr}.")
    return size, _check_positive_int("steps", steps), _check_positive_int("batch_size", batch_size), float(lr)


def _check_device(model: str | Classifier, device: str | torch.device | None) -> torch.device:
    target = resolve_device(model.device if isinstance(model, Classifier) and device is None else device)
    if isinstance(model, Classifier) and model.device != target:
        raise InputError(
            f"The model lives on {model.device} but device={str(target)!r} was asked for; leave device=None "
            "to use the model's device, or pass the model's name instead of the loaded model."
        )
    return target


def study_config(task: TransferTask) -> dict[str, Any]:
    """What a results file's rows depend on, besides their units: a rerun resumes only under the same config."""
    data = task.data
    return {
        "study": "transfer",
        "dataset": data.name,
        "dataset_sha256": tensor_digest(data.x_train, data.y_train, data.x_test, data.y_test)[:16],
        "num_classes": data.num_classes,
        "input_shape": list(data.input_shape),
        "test_counts": torch.bincount(data.y_test, minlength=data.num_classes).tolist(),
        "model_name": task.model_name,
        "image_size": task.image_size,
        "steps": task.steps,
        "lr": task.lr,
        "small_cnn_lr": SMALL_CNN_LR,
        "batch_size": task.batch_size,
        "probe_C": PROBE_C,
        "recipe": RECIPE_VERSION,
        "validation_share": VALIDATION_SHARE,
        "grids": {name: [dict(p) for p in STRATEGIES[name].grid] for name in STRATEGIES},
    }


# ------------------------------------------------------------------------------- the entry
def compare_transfer(
    dataset: str | Dataset = "textures",
    model: str | Classifier = BUNDLED_MODEL,
    *,
    shots: Sequence[int] | int = DEFAULT_SHOTS,
    seeds: int = MIN_SAMPLES,
    strategies: Sequence[str] | str = tuple(STRATEGIES),
    image_size: int = DEFAULT_IMAGE_SIZE,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    out: str | Path | None = None,
    progress: bool | Progress = True,
    budget_seconds: float | None = None,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    resources: Mapping[str, float] | None = None,
) -> TransferResults:
    """Compare transfer learning with training from scratch on ``shots`` labelled examples per class.

    For every shot level and seed one sample of ``shots`` training images per class is drawn and
    every strategy (see ``STRATEGIES``) trains on that same sample; accuracy is measured on the
    whole test split. Each strategy's settings (learning rate × steps for networks, ``C`` for the
    logistic regressions; 4 per strategy) are chosen on a validation split carved from the support
    (:func:`choose_params`; at 1 shot the grid's first, default entry), then it retrains on the whole
    support. Networks train for about ``steps`` Adam steps (through ``fit``) on mini-batches
    of up to ``batch_size``; fine_tune and scratch share ``lr`` (at 1e-3 Adam's first, sign-like
    steps wreck the pretrained weights on digits), small_cnn uses ``SMALL_CNN_LR``. Images are
    resized to ``image_size`` and normalized with the model's mean/std; frozen features are cached
    (``cache_dir``, default ``$EXPLAINER_CACHE`` or ``~/.cache/explainer``).

    ``out`` (a ``.jsonl`` results file) receives every finished run at once; rerunning the same
    configuration resumes and computes only missing runs. ``progress=True`` prints the estimate and a
    tqdm bar to stderr, ``False`` is silent, a callable ``progress(done, total, row)`` is called after each
    row. ``budget_seconds``: refuse (InputError, with what to shrink) a study whose estimate exceeds it. ``backend="ray"`` runs the units on an existing Ray cluster at ``address``
    (default ``"auto"``) with ``resources`` per worker – the same numbers as ``"local"``.
    """
    start = time.perf_counter()
    names = check_strategies(strategies)
    seed_count = _check_positive_int("seeds", seeds)
    image_size, steps, batch_size, lr = _check_recipe(image_size, steps, batch_size, lr)
    data = _check_dataset(dataset)
    levels = _check_shots(shots, data)
    target = _check_device(model, device)
    spec = TaskSpec(data, model, image_size, steps, lr, batch_size, str(target), None if cache_dir is None else str(cache_dir))
    task = spec.task()
    # seed by seed: an interrupted study holds whole curves for its first seeds
    units = [{"strategy": name, "shots": k, "seed": seed} for seed in range(seed_count) for k in levels for name in names]
    path = Path(out).expanduser() if out is not None else None
    finished = finished_keys(path, units)
    resumed = len(finished)
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds, got {budget_seconds!r}.")
    features = None
    if any(STRATEGIES[name].uses_features for name in names):
        features = task.features()  # a one-off cost, reported as feature_seconds rather than in the first run's
    remaining = [unit for unit in units if unit_key(unit) not in finished]
    estimate = estimate_seconds(task, remaining) if remaining and (progress is True or budget_seconds) else 0.0
    if budget_seconds is not None and estimate > budget_seconds:
        raise InputError(
            f"The transfer study is estimated at {duration(estimate)} for {len(remaining)} runs, over budget_seconds="
            f"{budget_seconds:g}. Shrink it: fewer seeds (now {seed_count}), fewer or smaller shot levels "
            f"(now {levels}), drop the costly strategies (fine_tune, scratch), fewer steps – or raise the budget.")
    report, bar = _progress(progress, estimate, len(units), resumed)
    if backend == "ray" and not isinstance(dataset, Dataset):
        spec = TaskSpec(dataset, model, image_size, steps, lr, batch_size, None, spec.cache_dir)  # workers load their own
    worker = functools.partial(_cached_task_worker, task) if backend == "local" else functools.partial(transfer_worker, spec)
    rows = run_units(
        units, worker, out=path, config=study_config(task), backend=backend, address=address,
        resources=resources, progress=report,
    )
    if bar is not None:
        bar.close()
    return TransferResults.from_rows(
        rows, study_config(task), strategies=names, device=str(target), seconds=time.perf_counter() - start,
        feature_seconds=features.seconds if features else None, feature_source=features.source if features else None,
        resumed=resumed, out=str(path) if path is not None else None,
    )


def _progress(progress: bool | Progress, estimate: float, total: int, resumed: int) -> tuple[Progress | None, Any]:
    """The runner's callback and the tqdm bar it drives (None, None when silent)."""
    if callable(progress):
        return progress, None
    if progress is not True:
        return None, None
    from tqdm.auto import tqdm

    print(f"transfer: {total - resumed} runs to do ({resumed} in the results file), estimated {duration(estimate)}.",
          file=sys.stderr)
    bar = tqdm(total=total, initial=resumed, desc="transfer", unit="run", file=sys.stderr)

    def report(done: int, count: int, row: Row) -> None:
        bar.update(done - bar.n)  # the runner reports the resumed rows too: move to ``done``, never past it

    return report, bar


def _cached_task_worker(task: TransferTask) -> Callable[[Mapping[str, Any]], Row]:
    """The local backend's factory: reuse the task already built (and its loaded model and features)."""
    return functools.partial(run_unit, task)


def resume_results(
    path: str | Path, *, shots: Sequence[int] | int | None = None, seeds: int | None = None,
    strategies: Sequence[str] | str | None = None, progress: bool | Progress = True,
    device: str | torch.device | None = None, cache_dir: str | Path | None = None, backend: str = "local",
    address: str | None = None,
) -> TransferResults:
    """Complete a results file: rerun its study with ``out=path``, so only the runs it lacks are computed.

    The file's configuration defines the task; ``shots``, ``seeds`` and ``strategies`` default to those
    its rows hold (a file cut off early knows only those: pass the study's own to finish it). This is
    the explicit way to resume; :func:`explainer.transfer.results.open_results` only reads.
    """
    config, rows = read_results(path)
    if config.get("study") != "transfer" or not rows:
        raise InputError(
            f"{path} is not a transfer results file with finished runs; make one with "
            "compare_transfer(..., out=FILE) or `explainer transfer --out FILE`."
        )
    return compare_transfer(
        str(config["dataset"]), str(config["model_name"]),
        shots=sorted({int(row["shots"]) for row in rows}) if shots is None else shots,
        seeds=max(int(row["seed"]) for row in rows) + 1 if seeds is None else seeds,
        strategies=list(dict.fromkeys(str(row["strategy"]) for row in rows)) if strategies is None else strategies,
        image_size=int(config["image_size"]), steps=int(config["steps"]), lr=float(config["lr"]),
        batch_size=int(config["batch_size"]), out=path, progress=progress, device=device, cache_dir=cache_dir,
        backend=backend, address=address,
    )
