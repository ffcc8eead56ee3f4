"""`planted_benchmark`: which explanations find the truth planted in the ``planted`` dataset?

Per seed two small CNNs train on ``planted`` data that differ in one thing: in one the corner shortcut
shows the label's colour (``shortcut``, default 1.0), in the other it is random (``shortcut=0``). How much
each network *uses* the shortcut is measured causally, not assumed: its accuracy on the test set minus
its accuracy on the same images with the shortcut's colour flipped (:func:`shortcut_reliance`). Every
kind of explanation is then scored on whether it reports that difference:

* ``pixels`` – each attribution method (and the controls): the share of attribution mass on the shortcut
  for the network that uses it minus the share for the one that does not (baseline: the random control);
* ``data`` – precision@k of TracIn self-influence at finding the mislabeled training images (baseline: the
  training-loss ranking; the loss ranking itself is scored against random order);
* ``patching`` – position patching at ``conv2`` between test images of the two classes: the share of the restored
  logit difference at the shortcut's positions, for the network that uses it minus the one that does not;
* ``concepts`` – NMF concepts (CRAFT) of ``conv2``: the share of the concepts' importance that sits on the
  shortcut, same difference (both baselines: a difference of 0).

Units are seed × kind, run by :func:`explainer.run.run_units` (resumable results file, local or Ray); each
unit runs on one thread so rows are the same on every backend. Scores get Student-t intervals over seeds
and paired verdicts from :mod:`explainer.stats`. ``timeline=True`` adds, per seed, a network trained with
``timeline_shortcut`` whose reliance and explanations are measured after every epoch.

The parts: :mod:`~explainer.evidence.planted_settings` (settings, kinds, units),
:mod:`~explainer.evidence.planted_reliance` (the measured reliance), :mod:`~explainer.evidence.planted_worker`
(one unit's row), :mod:`~explainer.evidence.planted_estimate` (the time estimate) and
:mod:`~explainer.evidence.planted_report` (the report card); this module runs them or opens a results file.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from explainer.errors import InputError
from explainer.evidence.planted_estimate import estimate_planted
from explainer.evidence.planted_report import PlantedReport, _report
from explainer.evidence.planted_settings import (
    BASELINE_CONTROL,
    CONTROLS,
    QUICK_METHODS,
    SKIPPED_BY_DEFAULT,
    PlantedSettings,
    _settings_from,
    planted_units,
)
from explainer.evidence.planted_worker import make_worker
from explainer.jsonable import json_ready
from explainer.run import StudyProgress, finished_keys, run_units
from explainer.run.long_call import duration


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise InputError(f"seeds must be a count or a list of seeds, got {seeds!r}.")
    if isinstance(seeds, int):
        if seeds < 1:
            raise InputError(f"seeds must be at least 1 (5 or more to name winners), got {seeds}.")
        return list(range(seeds))
    chosen = [int(s) for s in seeds]
    if not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise InputError(f"seeds must be distinct whole numbers ≥ 0, got {seeds!r}.")
    return chosen


def _methods(methods: Sequence[str] | None, quick: bool) -> tuple[str, ...]:
    from explainer.attribution.registry import list_methods
    from explainer.evidence.controls import is_control

    if methods is None:
        chosen = QUICK_METHODS if quick else tuple(m for m in list_methods() if m not in SKIPPED_BY_DEFAULT)
        return tuple(chosen) + CONTROLS
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    known = set(list_methods()) | set(CONTROLS)
    unknown = [m for m in methods if m not in known and not is_control(m)]
    if unknown:
        raise InputError(f"Unknown method(s) {', '.join(unknown)}; see explainer.list_methods() and the controls "
                         f"{', '.join(CONTROLS)}.")
    return tuple(dict.fromkeys([*methods, BASELINE_CONTROL]))


def _progress(progress: bool | StudyProgress, total: int) -> tuple[Callable[[int, int, Any], None] | None, Any]:
    if progress is False:
        return None, None
    started = time.perf_counter()
    first: list[int] = []
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="planted", unit="unit", file=sys.stderr)

    def report(done: int, count: int, _row: Any) -> None:
        if not first:
            first.append(done - 1)
        fresh = done - first[0]
        left = (time.perf_counter() - started) / fresh * (count - done) if fresh > 0 else None
        if bar is not None:
            bar.update(done - bar.n)  # tqdm's own rate limit: resumed rows do not print a line each
        elif callable(progress):
            progress(done, count, left)

    return report, bar


def planted_benchmark(
    *,
    seeds: int | Sequence[int] = 5,
    methods: Sequence[str] | None = None,
    quick: bool = False,
    out: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    timeline: bool = False,
    progress: bool | StudyProgress = True,
    budget_seconds: float | None = None,
    settings: PlantedSettings | None = None,
) -> PlantedReport:
    """Score every kind of explanation against the planted truth over ``seeds`` (see the module docstring).

    ``methods``: attribution methods (default every registered method that applies, or a small set with
    ``quick``); the controls are always added. ``out``: a results file (JSONL) – a rerun with the same
    settings skips finished units. ``backend="ray"`` runs units on the Ray cluster at ``address``.
    ``progress``: a bar on stderr (True), nothing (False) or ``callback(done, total, seconds_left)``; the
    estimate is printed first when progress is shown. ``budget_seconds``: refuse (InputError) a run estimated
    to take longer.
    """
    chosen = _seeds(seeds)
    resolved = settings or (PlantedSettings.quick(_methods(methods, True)) if quick
                            else PlantedSettings(methods=_methods(methods, False)))
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or budget_seconds <= 0):
        raise InputError(f"budget_seconds must be a positive number of seconds, got {budget_seconds!r}.")
    units = planted_units(chosen, timeline=timeline)
    config = {"benchmark": "planted", **json_ready(asdict(resolved))}
    estimate = estimate_planted(resolved, chosen, timeline=timeline, done=finished_keys(out, units))
    if budget_seconds is not None and estimate.seconds > budget_seconds:
        raise InputError(f"The planted benchmark is estimated at {duration(estimate.seconds)}, over budget_seconds="
                         f"{budget_seconds:g}. Use quick=True, fewer seeds or methods, or raise the budget.")
    if progress is not False:
        resumed = f", {len(units) - estimate.units} of {len(units)} units already in {out}" if estimate.units < len(units) else ""
        print(f"planted: estimated {duration(estimate.seconds)} for {len(chosen)} seed(s){resumed} "
              f"({', '.join(f'{k} {v:.0f} s' for k, v in estimate.parts.items())})", file=sys.stderr)

    report_progress, bar = _progress(progress, len(units))
    started = time.perf_counter()
    try:
        rows = run_units(units, functools.partial(make_worker, asdict(resolved)), out=out, config=config,
                         backend=backend, address=address, resources={"num_cpus": 1} if backend == "ray" else None,
                         progress=report_progress)
    finally:
        if bar is not None:
            bar.close()
    return _report(rows, resolved, chosen, time.perf_counter() - started, estimate.seconds)


def open_planted(source: str | Path | bytes) -> PlantedReport:
    """The report card of a finished (or partial) planted results file, without running anything."""
    from explainer.run import read_results

    config, rows = read_results(source)
    if config.get("benchmark") != "planted":
        raise InputError(f"{source if not isinstance(source, bytes) else 'the upload'} is not a planted results file; "
                         "write one with `explainer planted --out results/planted.jsonl`.")
    settings = _settings_from({k: v for k, v in config.items() if k != "benchmark"})
    seeds = sorted({int(r["seed"]) for r in rows})
    seconds = float(sum(r.get("seconds", 0.0) + r.get("train_seconds", 0.0) for r in rows))
    return _report(rows, settings, seeds, seconds, None)
