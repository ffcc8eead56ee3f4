"""Sweeps: real training on tiny grids – divergence kept, seeds repeatable, resume after SIGKILL, Ray = local."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import explainer
from explainer.cli import main
from explainer.learn.sweep import SweepProgress, TrainingTask, open_sweep, sweep
from explainer.plots.sweep import (
    accuracy_by_setting,
    accuracy_vs_seconds,
    run_curves,
    run_gradient_norms,
    sweep_heatmap,
)

ROOT = Path(__file__).resolve().parents[1]
#: The learning-rate grid of most tests: two sensible rates and one that must diverge.
TASK = TrainingTask(dataset="digits", arch="mlp", epochs=4)
GRID = {"lr": [0.01, 0.03, 10.0]}
SEEDS = 3
#: Columns that are measured wall time, the only ones allowed to differ between repeats.
TIMES = {"seconds", "wall_seconds"}


def _numbers(runs: list[dict]) -> list[dict]:
    return [{key: value for key, value in run.items() if key not in TIMES} for run in runs]


@pytest.fixture(scope="module")
def lr_sweep():
    """The learning-rate grid on digits, 3 seeds, one torch thread, with every progress event kept."""
    events: list[SweepProgress] = []
    states = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    results = sweep(TASK, GRID, seeds=SEEDS, threads=1, progress=events.append)
    after = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    return results, events, states, after


def test_divergent_rate_is_kept_as_diverged_and_sensible_rates_learn(lr_sweep):
    results, _, _, _ = lr_sweep
    table = results.table()
    assert len(table) == len(GRID["lr"]) * SEEDS
    assert set(table.loc[table["lr"] == 10.0, "status"]) == {"diverged"}
    assert not (table.loc[table["lr"] < 1, "status"] == "diverged").any()
    summary = results.summary().set_index("lr")
    assert (summary.loc[[0.01, 0.03], "mean"] > 0.90).all()
    assert summary.loc[10.0, "diverged"] == SEEDS and summary.loc[10.0, "mean"] < 0.5
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    assert results.best["lr"] in (0.01, 0.03)
    assert (table["flops"] > 0).all() and (table["seconds"] > 0).all()
    verdict = results.verdict()
    assert "Diverged" in verdict and "[lr=10]" in verdict and "Share of the spread in test accuracy (Type-II ANOVA, F-tests Holm-adjusted): lr " in verdict
    assert results.share_of_variance()["lr"] > 0.9
    mine = results.summary()
    mine["mean"] *= 100  # a caller's copy: the results' own numbers stay as they were
    assert results.summary()["mean"].max() <= 1 and results.verdict() == verdict


def test_seeds_repeat_exactly_and_leave_the_global_rng_alone(lr_sweep):
    results, _, before, after = lr_sweep
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    again = sweep(TASK, {"lr": [0.03]}, seeds=[1, 2], threads=1)
    assert _numbers(again.runs) == _numbers([results.run(lr=0.03, seed=s) for s in (1, 2)])
    first, second = (results.run(lr=0.03, seed=s)["curves"]["train_loss"] for s in (0, 1))
    assert first != second, "different seeds must give different runs"


def test_estimate_comes_first_from_a_measured_run_then_every_run(lr_sweep):
    results, events, _, _ = lr_sweep
    assert events[0].stage == "estimate" and events[0].estimate is results.estimate
    estimate = results.estimate
    assert estimate.runs == 9 and estimate.configurations == 3 and estimate.remaining == 8
    assert estimate.seconds_per_run > 0 and "9 runs (3 configurations × 3 seeds)" in estimate.words()
    runs = [event for event in events if event.stage == "run"]
    assert [event.done for event in runs][-1] == 9 and all(event.row is not None for event in runs)


def test_a_budget_too_small_is_refused_with_how_to_shrink_it():
    with pytest.raises(explainer.InputError, match="will not fit the budget of 0.05 s.*To shrink it.*fewer values of lr"):
        sweep(TASK, {"lr": [0.01, 0.03, 0.1], "activation": ["relu", "tanh"]}, seeds=3, budget_seconds=0.05, threads=1)


def test_bad_grids_name_the_problem():
    with pytest.raises(explainer.InputError, match="Unknown setting 'momentum'"):
        sweep(TASK, {"momentum": [0.9]})
    with pytest.raises(explainer.InputError, match="activation='swish' is not allowed"):
        sweep(TASK, {"activation": ["relu", "swish"]})
    with pytest.raises(explainer.InputError, match="noise varies the 2-D sets"):
        sweep(TASK, {"noise": [0.1]})
    with pytest.raises(explainer.InputError, match="seeds must be at least 1"):
        sweep(TASK, GRID, seeds=0)


def test_json_verdict_and_one_seed_gives_no_verdict(capsys):
    code = main(["sweep", "--dataset", "digits", "--arch", "mlp", "--grid", "lr=0.03", "--grid", "activation=relu,sigmoid",
                 "--seeds", "1", "--epochs", "2", "--threads", "1", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) >= {"runs", "summary", "best", "indistinguishable", "verdict"}
    assert len(payload["runs"]) == 2 and {"lr", "activation", "seed", "test_accuracy", "status"} <= set(payload["runs"][0])
    assert set(payload["summary"][0]) >= {"lr", "activation", "mean", "ci_low", "ci_high", "n", "diverged"}
    assert payload["summary"][0]["ci_low"] is None  # one seed: no interval
    assert payload["verdict"].startswith("One seed: no verdict – add seeds")
    assert payload["indistinguishable"] == [{k: v for k, v in s.items() if k in ("lr", "activation")}
                                            for s in payload["summary"] if s["activation"] != payload["best"]["activation"]]


def test_figures_mark_diverged_cells_and_show_a_runs_gradients(lr_sweep):
    results, _, _, _ = lr_sweep
    heatmap = sweep_heatmap(results)
    assert len(heatmap.layout.shapes) == 1  # the diverged lr=10 cell
    assert "diverged 3/3" in " ".join(heatmap.data[0].text[0])
    assert heatmap.data[0].customdata[0][2] == {"lr": 10.0}
    assert heatmap.data[1].customdata[2] == {"lr": 10.0}  # the clickable marker on that cell
    assert len(accuracy_by_setting(results).data) == 2
    assert len(accuracy_vs_seconds(results).data) == 3
    run = results.run(lr=0.03, seed=0)
    norms = run_gradient_norms(run)
    assert {trace.name for trace in norms.data} == {"fc1", "out"}
    assert len(run_curves(run).data) == 3


def test_deep_sigmoid_first_layer_gets_the_smallest_gradients():
    results = sweep(TASK, {"activation": ["sigmoid"], "depth": [4]}, seeds=1, threads=1)
    norms = results.run(activation="sigmoid", depth=4)["grad_norm"]
    assert list(norms) == ["fc1", "fc2", "fc3", "fc4", "out"]
    assert np.mean(norms["fc1"]) < np.mean(norms["out"]) / 10


def test_cnn_channels_and_playground_tasks_sweep():
    cnn = sweep(TrainingTask(dataset="digits", arch="cnn", epochs=1), {"channels": [4, 8]}, seeds=1, threads=1)
    assert [run["parameters"] for run in cnn.runs][0] < [run["parameters"] for run in cnn.runs][1]
    playground = sweep(explainer.PlaygroundConfig(dataset="gauss", epochs=10, n_points=100), {"noise": [0.0, 0.3], "width": [2]},
                       seeds=1, threads=1)
    assert [run["noise"] for run in playground.runs] == [0.0, 0.3] and all(0 <= r["test_accuracy"] <= 1 for r in playground.runs)


_KILLED_SWEEP = """
import sys
from explainer.learn.sweep import TrainingTask, sweep
sweep(TrainingTask(dataset="digits", arch="mlp", epochs=4), {"lr": [0.01, 0.03, 10.0]}, seeds=3, out=sys.argv[1], threads=1)
"""


def _rows(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines()[1:] if line.endswith("}")]


def test_resume_after_sigkill_finishes_the_grid_without_redoing_runs(tmp_path, lr_sweep, capsys):
    out = tmp_path / "sweep.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_SWEEP, str(out)], env=env)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not (out.exists() and len(_rows(out)) >= 2):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(out)
    assert 2 <= len(before) < 9, f"the kill should land mid-grid, found {len(before)} rows"
    computed: list[dict] = []
    resumed = sweep(TASK, GRID, seeds=SEEDS, out=out, threads=1,
                    progress=lambda event: computed.append(event) if event.stage == "run" else None)
    after = _rows(out)
    assert after[: len(before)] == before and len(after) == 9  # finished runs kept as they were, none twice
    assert _numbers(resumed.runs) == _numbers(lr_sweep[0].runs)
    assert _numbers(open_sweep(out).runs) == _numbers(lr_sweep[0].runs)
    capsys.readouterr()
    sweep(TASK, GRID, seeds=SEEDS, out=out, threads=1, progress=True)  # all 9 in the file: the bar ends at 9, not 18
    assert re.search(r"\b9/9\b", capsys.readouterr().err.replace("\r", "\n").splitlines()[-1])


_RAY_SWEEP = """
import json, sys
from explainer.learn.sweep import TrainingTask, sweep
results = sweep(TrainingTask(dataset="digits", arch="mlp", epochs=4), {"lr": [0.01, 0.03, 10.0]}, seeds=3,
                backend="ray", address="auto")
json.dump(results.to_dict(curves=True), open(sys.argv[1], "w"))
"""


@pytest.mark.slow  # the session's Ray cluster starts in 15–60 s on 2 busy cores
def test_ray_on_a_private_local_cluster_gives_the_local_table(private_ray_cluster, tmp_path, lr_sweep):
    out = tmp_path / "ray.json"
    done = private_ray_cluster.run(_RAY_SWEEP, str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(out.read_text())
    assert _numbers(remote["runs"]) == _numbers(lr_sweep[0].to_dict(curves=True)["runs"])
    assert remote["verdict"] == lr_sweep[0].verdict()


def test_experiment_section_runs_a_grid_live_and_opens_a_run():
    from streamlit.testing.v1 import AppTest

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'dashboards')!r})
        from sections.experiment import render_experiment_section
        render_experiment_section("train", key="ex")
    """)
    at = AppTest.from_string(script, default_timeout=120)
    at.run()
    at.number_input(key="ex_epochs").set_value(2)
    at.text_input(key="ex_values_lr").set_value("0.03, 10")
    at.text_input(key="ex_values_activation").set_value("relu")
    at.number_input(key="ex_seeds").set_value(1)
    at.run()
    at.button(key="ex_run_button").click().run()
    assert not at.exception and not at.error, [*at.exception, *at.error]
    assert "One seed: no verdict" in at.info[0].value and "[lr=10, activation=relu] (1 of 1)" in at.info[0].value
    at.selectbox(key="ex_run").select_index(1).run()
    assert not at.exception and at.selectbox(key="ex_run").value == "lr=10.0, activation=relu, seed 0"
    assert len(at.get("plotly_chart")) == 5  # heatmap, bands, cost, the run's curves and gradient norms


# ---------------------------------------------------------------- the verdict's statistics (issue 18)
def _synthetic(rows: list[dict], grid: dict) -> explainer.learn.sweep.SweepResults:
    """SweepResults over made-up runs: the summarising code alone (shares, best, verdict), no training."""
    from explainer.learn.sweep import SweepResults

    runs = [{**row, "final_loss": 0.1, "seconds": 1.0, "flops": 1, "status": "ok"} for row in rows]
    return SweepResults(TASK, grid, sorted({row["seed"] for row in rows}), runs)


def test_an_unbalanced_additive_grid_has_no_interaction_and_shares_within_one():
    rng = np.random.default_rng(0)
    grid = {"lr": [0.01, 0.1], "activation": ["relu", "tanh"]}
    rows = []
    for lr, act, count in [(0.01, "relu", 6), (0.1, "tanh", 6), (0.01, "tanh", 1), (0.1, "relu", 1)]:
        for seed in range(count):
            effect = 0.2 * (lr == 0.1) + 0.1 * (act == "tanh")  # purely additive
            rows.append({"lr": lr, "activation": act, "seed": seed, "test_accuracy": 0.5 + effect + rng.normal(0, 0.01)})
    results = _synthetic(rows, grid)
    shares = results.variance_shares()
    assert shares is not None and not shares.balanced
    assert shares.shares["interaction"] < 0.01
    assert sum(shares.shares.values()) + shares.residual == pytest.approx(1.0)
    assert sum(results.share_of_variance().values()) <= 1.0 + 1e-9
    assert "unbalanced" in results.verdict()


def test_pure_noise_makes_no_setting_significant_in_nine_of_ten_grids():
    grid = {"lr": [0.001, 0.01, 0.1], "activation": ["relu", "tanh", "sigmoid"]}
    false_alarms = 0
    trials = 60
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        rows = [{"lr": lr, "activation": act, "seed": seed, "test_accuracy": 0.9 + rng.normal(0, 0.02)}
                for lr in grid["lr"] for act in grid["activation"] for seed in range(5)]
        false_alarms += bool(_synthetic(rows, grid).variance_shares().significant())
    assert false_alarms <= 0.1 * trials, false_alarms


def test_three_seeds_name_no_winner_and_five_with_a_real_difference_do(capsys):
    args = ["sweep", "--dataset", "digits", "--arch", "mlp", "--grid", "lr=0.03,10", "--epochs", "2", "--threads", "1",
            "--json"]
    assert main([*args, "--seeds", "3"]) == 0
    few = json.loads(capsys.readouterr().out)
    assert few["enough"] is False and few["best_of"]["winner"] is None
    assert "too few to name a winner: run ≥ 5 seeds" in few["verdict"] and "3 of 3 seeds agree" in few["verdict"]
    assert main([*args, "--seeds", "5"]) == 0
    many = json.loads(capsys.readouterr().out)
    assert many["enough"] is True and many["best_of"]["winner"] == "[lr=0.03]"
    assert many["verdict"].startswith("Best: [lr=0.03]")
