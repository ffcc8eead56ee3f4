"""The planted dataset, measured shortcut reliance and the planted benchmark – real training throughout."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict

import pytest
import torch
from ray_cluster import private_ray_cluster  # noqa: F401 - the session's Ray cluster fixture

import explainer
from explainer import stats
from explainer.errors import InputError
from explainer.evidence.planted import open_planted, planted_benchmark
from explainer.evidence.planted_estimate import estimate_planted
from explainer.evidence.planted_reliance import shortcut_reliance
from explainer.evidence.planted_settings import (
    NO_SHORTCUT_CONCEPT,
    RANDOM_SITE,
    PlantedSettings,
    available_optional_kinds,
    planted_units,
)
from explainer.learn.influence import find_mislabeled
from explainer.run import finished_keys

SEEDS = range(5)
#: Small enough for a test, large enough that the shortcut-free network learns the stripes.
TINY = PlantedSettings(methods=("saliency", "control:random"), n_train=200, n_test=80, epochs=3, images=8,
                       timeline_epochs=3, timeline_methods=("saliency", "control:random"))


def _train(shortcut: float, seed: int):
    data = explainer.load_dataset("planted", n_train=600, n_test=200, shortcut=shortcut, seed=seed)
    network = explainer.build_model("cnn", data, seed=seed, channels=(8, 16), pool="each", hidden=32)
    run = explainer.fit(network, data, epochs=5, seed=seed, telemetry="off", device="cpu", keep_checkpoints=True)
    run.model.eval()
    return run, data


@pytest.fixture(scope="module")
def trained():
    """Five seeds of networks trained with shortcut=0 and shortcut=1 (one thread: steady beside other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {shortcut: [_train(shortcut, seed) for seed in SEEDS] for shortcut in (0.0, 1.0)}
    finally:
        torch.set_num_threads(threads)


def test_planted_truth_is_exact():
    data = explainer.load_dataset("planted", n_train=300, n_test=60, shortcut=1.0, mislabeled=0.1, seed=3)
    truth = data.truth
    assert torch.equal(torch.nonzero(data.y_train != truth.clean_y_train).ravel(), truth.mislabeled)
    assert len(truth.mislabeled) == 30
    assert bool(truth.shortcut_agrees.all())
    assert data.x_train.shape == (300, 3, 32, 32) and truth.x_test_flipped.shape == data.x_test.shape
    # the shortcut's pixels are the only ones that differ between the test set and its flipped copy
    changed = (data.x_test != truth.x_test_flipped).any(1, keepdim=True)
    assert bool((changed <= truth.shortcut_masks_test).all()) and bool(changed.any())
    for masks in (truth.object_masks_train, truth.distractor_masks_train):
        assert not bool((masks & truth.shortcut_masks_train).any())
    assert torch.equal(data.masks_train, truth.object_masks_train)
    uninformative = explainer.load_dataset("planted", n_train=2000, n_test=20, shortcut=0.0, seed=3)
    assert abs(uninformative.truth.shortcut_agreement - 0.5) < 0.05
    with pytest.raises(InputError, match="shortcut must be between 0 and 1"):
        explainer.load_dataset("planted", shortcut=1.5)


def test_reliance_is_measured_zero_without_the_shortcut_and_large_with_it(trained):
    honest = [shortcut_reliance(run.model, data) for run, data in trained[0.0]]
    cheating = [shortcut_reliance(run.model, data) for run, data in trained[1.0]]
    assert min(r.accuracy for r in honest) > 0.8  # the shortcut-free networks learned the object
    without = stats.mean_interval([r.flip_drop for r in honest])
    assert without.low <= 0.0 <= without.high, without
    assert min(r.flip_drop for r in cheating) >= 0.30, [r.flip_drop for r in cheating]


def test_data_attribution_beats_random_order_at_finding_mislabels(trained):
    searches = [find_mislabeled(run, data, data.truth.mislabeled, seed=seed)
                for seed, (run, data) in zip(SEEDS, trained[1.0])]
    tracin = [s.precision["tracin_self_influence"] for s in searches]
    random = [s.precision["random"] for s in searches]
    difference = stats.paired_difference(tracin, random)
    assert difference.low > 0, difference
    assert stats.compare("tracin", tracin, "random", random, higher_is_better=True, over="seeds").winner == "tracin"


def test_benchmark_report_rows_and_results_file(tmp_path):
    out = tmp_path / "planted.jsonl"
    report = planted_benchmark(seeds=2, settings=TINY, out=out, timeline=True, progress=False)
    rows = report.to_dict()["rows"]
    kinds = {row["kind"] for row in rows}
    assert {"reliance", "pixels", "data", "timeline", *available_optional_kinds()} <= kinds
    if "patching" in kinds:
        patched = next(r for r in rows if r["method"] == "position_patching")
        assert 0.0 <= patched["shortcut_share_uses"] <= 1.0 and patched["baseline"] == RANDOM_SITE
    if "concepts" in kinds:
        concept = next(r for r in rows if r["method"] == "nmf_concepts")
        assert 0.0 <= concept["shortcut_share_ignores"] <= concept["best_alignment_ignores"] + 1e-9
        assert concept["baseline"] == NO_SHORTCUT_CONCEPT and concept["beats_baseline"] is False  # 2 seeds: no verdict
    for row in rows:
        assert {"kind", "method", "score", "ci_low", "ci_high", "n", "baseline", "beats_baseline"} <= set(row)
        assert row["n"] == 2
    assert [r["seed"] for r in report.reliance] == [0, 1] and "flip_drop" in report.reliance[0]["uses"]
    pixel = next(r for r in rows if r["method"] == "saliency" and r["kind"] == "pixels")
    assert pixel["baseline"] == "control:random" and pixel["beats_baseline"] is False  # 2 seeds: no verdict
    assert "run ≥ 5 seeds" in pixel["verdict"]
    assert len(report.timeline) == TINY.timeline_epochs and "pixels:saliency" in report.timeline.columns
    assert set(report.time_shares()) >= {"training", "pixels", "data"}
    assert open_planted(out).to_dict()["rows"] == rows
    units = planted_units([0, 1, 2], timeline=True)
    left = estimate_planted(TINY, [0, 1, 2], timeline=True, done=finished_keys(out, units))
    assert left.units == len(units) // 3 and set(left.parts) >= {"training", "pixels"}  # only seed 2 is left to run
    with pytest.raises(InputError, match="seeds must be"):
        planted_benchmark(seeds=0, settings=TINY, progress=False)
    with pytest.raises(InputError, match="over budget_seconds"):
        planted_benchmark(seeds=2, settings=TINY, progress=False, budget_seconds=0.001)


_SCRIPT = """
import json, sys
from explainer.evidence.planted import planted_benchmark
from explainer.evidence.planted_settings import PlantedSettings
settings = PlantedSettings(**json.loads(sys.argv[1]))
report = planted_benchmark(seeds=int(sys.argv[2]), settings=settings, out=None if sys.argv[3] == "-" else sys.argv[3],
                           backend=sys.argv[4], address=None if sys.argv[4] == "local" else "auto", progress=False)
print(json.dumps(report.to_dict()["rows"]))
"""


@pytest.fixture(scope="module")
def tiny_reference() -> list[dict]:
    """The report rows of an uninterrupted local run of the tiny settings at 2 seeds."""
    return json.loads(json.dumps(planted_benchmark(seeds=2, settings=TINY, progress=False).to_dict()["rows"]))


def _tiny_json() -> str:
    return json.dumps(asdict(TINY))


def _same(a: list[dict], b: list[dict]) -> None:
    assert [(r["kind"], r["method"]) for r in a] == [(r["kind"], r["method"]) for r in b]
    for x, y in zip(a, b):
        for key in x:
            if isinstance(x[key], float):
                assert math.isclose(x[key], y[key], rel_tol=1e-6, abs_tol=1e-9), (x, y, key)
            else:
                assert x[key] == y[key], (x, y, key)


def test_a_killed_run_resumes(tmp_path, tiny_reference):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    out = tmp_path / "rows.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(script), _tiny_json(), "2", str(out), "local"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 3:  # header + 2 rows
            break
        assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    before = out.read_text().splitlines()
    units = 2 * (3 + len(available_optional_kinds()))  # 2 seeds × (reliance, pixels, data and the optional kinds)
    assert 2 <= len(before) - 1 < units, len(before)  # killed part-way through the units
    rerun = subprocess.run([sys.executable, str(script), _tiny_json(), "2", str(out), "local"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = out.read_text().splitlines()
    assert after[: len(before)] == before and len(after) == units + 1  # kept rows untouched, each unit once
    _same(json.loads(rerun.stdout.strip().splitlines()[-1]), tiny_reference)


def test_ray_backend_rows_equal_local_rows(private_ray_cluster, tmp_path, tiny_reference):  # noqa: F811
    script = tmp_path / "run_ray.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    result = private_ray_cluster.run(script, _tiny_json(), "2", "-", "ray", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    _same(json.loads(result.stdout.strip().splitlines()[-1]), tiny_reference)


@pytest.mark.slow
def test_quick_cli_runs_in_under_two_minutes():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "explainer.cli", "planted", "--quick", "--seeds", "2", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    payload = json.loads(done.stdout)
    assert {row["kind"] for row in payload["rows"]} >= {"reliance", "pixels", "data"}
    assert "estimated" in done.stderr
    assert seconds < 120, seconds
