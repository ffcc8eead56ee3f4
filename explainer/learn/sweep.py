"""`sweep()`: train every combination of a grid of settings × seeds, then say what made a difference.

A *task* is one training setup (:class:`TrainingTask` – a dataset and an architecture trained by
:func:`explainer.fit` – or a :class:`~explainer.learn.playground.PlaygroundConfig`); a *grid* maps a
setting (:data:`SETTINGS`) to the values to try. Every combination × seed is one independent unit
for the shared runner (:func:`explainer.run.run_units`): locally one after another, or as tasks on an
existing Ray cluster, streamed into an optional resumable results file. Before the grid starts, the
first run is trained and timed, giving the estimate (and the refusal when ``budget_seconds`` is too
small). Diverged runs are kept as rows with ``status="diverged"``.

Each unit's numbers depend only on the unit and the task: the seed fixes the initial weights (built
inside :func:`explainer.rng.isolated_rng`, so the caller's global RNG is untouched) and the
shuffling (``fit``'s own generator), so a repeat – or the same grid on Ray – gives the same table
(wall-clock seconds aside).

The settings, task and checks live in :mod:`explainer.learn.sweep_grid`, one run in
:mod:`explainer.learn.sweep_worker`, the results in :mod:`explainer.learn.sweep_results`; the names this
module held before that split are still importable from here.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from explainer.errors import InputError
from explainer.learn.sweep_grid import SETTING_HELP as SETTING_HELP
from explainer.learn.sweep_grid import SETTINGS as SETTINGS
from explainer.learn.sweep_grid import Task, _seed_list, _task_payload, check_grid, make_units, task_from_payload
from explainer.learn.sweep_grid import TrainingTask as TrainingTask
from explainer.learn.sweep_grid import parse_setting as parse_setting
from explainer.learn.sweep_results import RESULT_FIELDS as RESULT_FIELDS
from explainer.learn.sweep_results import RUN_COLUMNS as RUN_COLUMNS
from explainer.learn.sweep_results import SweepEstimate, SweepResults
from explainer.learn.sweep_worker import MIN_RUN_SECONDS as MIN_RUN_SECONDS
from explainer.learn.sweep_worker import make_worker
from explainer.run import read_results, run_units
from explainer.stats import MIN_SAMPLES

RESULTS_KIND = "explainer-sweep"


@dataclass(frozen=True)
class SweepProgress:
    """What ``progress`` receives: ``stage="estimate"`` once (with ``estimate``), then ``"run"`` after
    each finished run (with its ``row``)."""

    stage: str
    done: int
    total: int
    estimate: SweepEstimate | None = None
    row: dict | None = None


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
