"""The "Experiment" section of the Train page and the Playground: vary up to two settings over seeds.

A learner picks the settings and values, sees the estimate from one measured run, runs the grid live
(each finished run appears at once) or opens a results file made by ``explainer sweep --out``, and
reads the heatmap, the verdict and any run's curves. No ML here: everything calls ``explainer.sweep``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
import torch
from common import shows_errors

from explainer import PlaygroundConfig, SweepResults, TrainingTask, estimate_sweep, open_sweep, sweep
from explainer.data.datasets import TOY_SETS
from explainer.learn.sweep import SweepProgress
from explainer.learn.sweep_grid import SETTING_HELP, check_grid, parse_setting
from explainer.plots.sweep import (
    accuracy_by_setting,
    accuracy_vs_seconds,
    run_curves,
    run_gradient_norms,
    sweep_heatmap,
)

#: Values offered first for each setting (the learner edits them).
DEFAULT_VALUES = {
    "lr": "0.001, 0.01, 0.1", "activation": "relu, tanh, sigmoid", "optimizer": "sgd, adam", "depth": "1, 2, 4",
    "width": "8, 32, 128", "channels": "4, 8, 16", "batch_size": "16, 64, 256", "l1": "0, 0.0001, 0.001",
    "l2": "0, 0.001, 0.01", "epochs": "2, 5, 10", "noise": "0, 0.2, 0.4",
}
PLAYGROUND_VALUES = {**DEFAULT_VALUES, "lr": "0.003, 0.03, 0.3", "width": "2, 4, 8", "depth": "1, 2, 3"}
#: A sweep started from the page must fit this (seconds of this shared server's CPU).
PAGE_BUDGET_SECONDS = 180.0
MAX_RESULTS_MB = 20


def _task(page: str, key: str, task: TrainingTask | PlaygroundConfig | None) -> TrainingTask | PlaygroundConfig:
    """The base setup: given by the page, or picked here (dataset, network, epochs)."""
    if task is not None:
        return task
    left, middle, right = st.columns(3)
    if page == "playground":
        dataset = left.selectbox("Data set", list(TOY_SETS), key=f"{key}_dataset")
        epochs = int(right.number_input("Epochs per run", 5, 500, 50, step=5, key=f"{key}_epochs"))
        return PlaygroundConfig(dataset=dataset, epochs=epochs)
    dataset = left.selectbox("Data set", ["digits", *TOY_SETS], key=f"{key}_dataset")
    arch = middle.radio("Network", ["mlp", "cnn"] if dataset == "digits" else ["mlp"], horizontal=True, key=f"{key}_arch")
    epochs = int(right.number_input("Epochs per run", 1, 50, 5, key=f"{key}_epochs"))
    return TrainingTask(dataset=dataset, arch=arch, epochs=epochs)


def _allowed(task: TrainingTask | PlaygroundConfig) -> list[str]:
    names = list(SETTING_HELP)
    if isinstance(task, PlaygroundConfig) or task.arch == "mlp":
        names.remove("channels")
    if isinstance(task, TrainingTask) and task.dataset not in TOY_SETS:
        names.remove("noise")
    return names


def _grid(task: TrainingTask | PlaygroundConfig, key: str) -> tuple[dict[str, list], int]:
    """Up to two settings with their values, and the number of seeds."""
    defaults = PLAYGROUND_VALUES if isinstance(task, PlaygroundConfig) else DEFAULT_VALUES
    allowed = _allowed(task)
    chosen = st.multiselect("Settings to vary (up to two)", allowed, default=["lr", "activation"], max_selections=2,
                            format_func=lambda name: f"{name} – {SETTING_HELP[name]}", key=f"{key}_settings")
    columns = st.columns(max(1, len(chosen)) + 1)
    grid = {}
    for column, name in zip(columns, chosen):
        text = column.text_input(f"{name} values", defaults[name], key=f"{key}_values_{name}")
        grid[name] = parse_setting(name, text)
    seeds = int(columns[-1].number_input("Seeds", 1, 10, 3, key=f"{key}_seeds",
                                         help="2 or more give intervals; 5 or more (stats.MIN_SAMPLES) can name a winner"))
    return (check_grid(task, grid) if grid else {}), seeds


def _run_live(task: TrainingTask | PlaygroundConfig, grid: dict[str, list], seeds: int) -> SweepResults:
    bar = st.progress(0.0, text="Timing the first run…")
    table = st.empty()
    finished: list[dict] = []

    def progress(event: SweepProgress) -> None:
        if event.estimate is not None:
            st.caption(event.estimate.words())
        if event.row is not None:
            finished.append({k: v for k, v in event.row.items() if k not in ("curves", "grad_norm", "message")})
            table.dataframe(pd.DataFrame(finished), hide_index=True)
        bar.progress(event.done / event.total, text=f"{event.done} of {event.total} runs")

    return sweep(task, grid, seeds=seeds, budget_seconds=PAGE_BUDGET_SECONDS, progress=progress,
                 threads=torch.get_num_threads())  # the server's thread count stays as it is


def _open_file(key: str) -> SweepResults | None:
    upload = st.file_uploader("A results file from `explainer sweep --out FILE`", type=["jsonl", "json"],
                              key=f"{key}_upload")
    if upload is None:
        return None
    if upload.size > MAX_RESULTS_MB * 2**20:
        st.error(f"That file is over {MAX_RESULTS_MB} MB; a sweep's results file is far smaller.")
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sweep.jsonl"
        path.write_bytes(upload.getvalue())
        return open_sweep(path)


def _selected(results: SweepResults, event: Any, key: str) -> dict:
    """The run to show: the clicked heatmap cell (first seed), else the one picked in the list."""
    labels = {f"{', '.join(f'{k}={v}' for k, v in c.items())}, seed {s}": (c, s)
              for c in results.configurations() for s in results.seeds}
    points = getattr(getattr(event, "selection", None), "points", None) or []
    clicked = points[0].get("customdata") if points else None
    # Apply a click once: the selection stays in the chart's state, and a run picked later in the list wins.
    if isinstance(clicked, dict) and clicked != st.session_state.get(f"{key}_clicked"):
        st.session_state[f"{key}_clicked"] = clicked
        for label, (settings, seed) in labels.items():
            # values come back through JSON (10.0 as 10): compare values, not labels
            if seed == results.seeds[0] and all(clicked.get(k) == v for k, v in settings.items()):
                st.session_state[f"{key}_run"] = label
                break
    if st.session_state.get(f"{key}_run") not in labels:  # a new sweep: its first run
        st.session_state.pop(f"{key}_run", None)
    choice = st.selectbox("Open a run", list(labels), key=f"{key}_run")
    settings, seed = labels.get(choice, next(iter(labels.values())))
    return results.run(seed=seed, **settings)


def _show(results: SweepResults, key: str) -> None:
    st.info(results.verdict())
    settings = results.settings
    event = st.plotly_chart(sweep_heatmap(results), on_select="rerun", selection_mode="points", key=f"{key}_heatmap")
    bands, cost, table = st.tabs(["Accuracy by setting", "Accuracy against seconds", "All runs"])
    with bands:
        st.plotly_chart(accuracy_by_setting(results, settings[0]), key=f"{key}_bands")
    with cost:
        st.plotly_chart(accuracy_vs_seconds(results), key=f"{key}_cost")
    with table:
        st.dataframe(results.summary(), hide_index=True)
        st.dataframe(results.table(), hide_index=True)
    run = _selected(results, event, key)
    st.caption(run.get("message", ""))
    curves, gradients = st.columns(2)
    curves.plotly_chart(run_curves(run), key=f"{key}_curves")
    with gradients, shows_errors(stop=False):
        st.plotly_chart(run_gradient_norms(run), key=f"{key}_gradients")


def render_experiment_section(page: str, *, key: str, task: TrainingTask | PlaygroundConfig | None = None,
                              settings: Sequence[str] | None = None) -> SweepResults | None:
    """Draw the Experiment section on ``page`` (``"train"`` or ``"playground"``); widget keys start with ``key``.

    ``task`` fixes the base setup (default: picked in the section). Returns the results on show, if any.
    ``settings`` is accepted for symmetry with the pages and ignored (the learner picks).
    """
    results_key = f"{key}_results"
    st.header("Experiment like a scientist")
    st.markdown(
        "Change **one or two settings** over a grid, train every combination with several seeds, and see which "
        "differences are bigger than seed noise (95 % intervals over seeds). Diverged runs stay in the table."
    )
    source = st.radio("Results", ["Run a sweep here", "Open a results file"], horizontal=True, key=f"{key}_source")
    with shows_errors(stop=False):
        if source == "Open a results file":
            opened = _open_file(key)
            if opened is not None:
                st.session_state[results_key] = opened
        else:
            base = _task(page, key, task)
            grid, seeds = _grid(base, key)
            if not grid:
                st.caption("Pick a setting to vary.")
                return st.session_state.get(results_key)
            runs = seeds
            for values in grid.values():
                runs *= len(values)
            estimate_col, run_col = st.columns(2)
            if estimate_col.button("Estimate the time", key=f"{key}_estimate"):
                st.caption(estimate_sweep(base, grid, seeds=seeds, threads=torch.get_num_threads()).words())
            if run_col.button(f"Run {runs} trainings", type="primary", key=f"{key}_run_button"):
                st.session_state[results_key] = _run_live(base, grid, seeds)
    results = st.session_state.get(results_key)
    if results is not None:
        with shows_errors(stop=False):
            _show(results, key)
    return results
