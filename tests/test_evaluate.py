"""explainer.evaluate: one protocol over a dataset – controls, intervals, resume after a kill, Ray equals local.

Real models and data: a digits CNN trained in a fixture (a few seconds), known_answer with a tiny CNN.
"""

from __future__ import annotations

import json
import os
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
from explainer import InputError
from explainer.cli import main as cli_main
from explainer.evidence.controls import CONTROLS, control_maps
from explainer.evidence.curves import noisy_linear_impute
from explainer.evidence.evaluate import evaluate, trained_classifier
from explainer.evidence.evaluation import Evaluation
from explainer.evidence.map_scores import gini, mask_share_values, pointing_game

REPO = Path(__file__).resolve().parents[1]
FAST = {"steps": 10, "randomization_steps": 2, "progress": False}
KEYS = {"summary", "comparisons", "controls", "best", "flags", "enough", "min_samples", "family", "verdict", "config"}


@pytest.fixture(scope="module")
def digits():
    return explainer.load_dataset("digits")


@pytest.fixture(scope="module")
def digits_cnn(digits):
    torch.set_num_threads(1)
    return trained_classifier("cnn", digits, seed=0)


@pytest.fixture(scope="module")
def digits_eval(digits_cnn, digits):
    return evaluate(digits_cnn, digits, methods=["integrated_gradients", "saliency"], limit=40,
                    metrics=["deletion_morf", "deletion_lerf", "insertion", "road_morf", "sparseness"], **FAST)


@pytest.fixture(scope="module")
def checkpoint(digits_cnn, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits_cnn.pt"
    torch.save(digits_cnn.module.state_dict(), path)
    return path


def test_random_control_scores_clearly_worse_than_integrated_gradients(digits_eval):
    ig = digits_eval.interval("integrated_gradients", "deletion_morf")
    random = digits_eval.interval("control:random", "deletion_morf")
    assert ig.n == random.n == 40
    assert ig.high < random.low, (ig, random)  # non-overlapping 95 % intervals, IG lower (better)
    diff = digits_eval.difference("integrated_gradients", "control:random", "deletion_morf")
    assert diff.excludes(0.0) and diff.mean < 0


def test_insertion_is_its_own_curve_not_lerf_read_backwards(digits_eval):
    for method in ("integrated_gradients", "control:random"):
        insertion, lerf = digits_eval.curves(method, "insertion"), digits_eval.curves(method, "deletion_lerf")
        assert insertion.shape == lerf.shape == (40, FAST["steps"] + 1)
        assert not np.allclose(insertion, lerf[:, ::-1], atol=1e-3)
        assert not np.allclose(digits_eval.scores(method, "insertion"), digits_eval.scores(method, "deletion_lerf"),
                               atol=1e-3)
        np.testing.assert_allclose(insertion[:, -1], lerf[:, 0], atol=1e-5)  # both: the untouched image


def test_summary_json_matches_the_issue(digits_eval):
    payload = json.loads(json.dumps(digits_eval.to_dict()))
    assert set(payload) == KEYS
    keys = {"method", "metric", "mean", "ci_low", "ci_high", "n", "interval", "better"}
    assert all(set(row) == keys and row["interval"] == "t" for row in payload["summary"])
    assert payload["enough"] is True and payload["min_samples"] == 5
    names = {row["method"] for row in payload["summary"]}
    assert names == {"integrated_gradients", "saliency", *CONTROLS}
    better = {row["metric"]: row["better"] for row in payload["summary"]}
    assert better == {"deletion_morf": "lower", "deletion_lerf": "higher", "insertion": "higher",
                      "road_morf": "lower", "sparseness": "higher"}
    for row in payload["summary"]:
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    pair = next(c for c in payload["comparisons"] if c["metric"] == "deletion_morf")
    assert {pair["a"], pair["b"]} == {"integrated_gradients", "saliency"}
    assert pair["winner"] in (None, "integrated_gradients", "saliency")
    assert pair["p_adjusted"] >= pair["p_value"] and pair["family"] == len(payload["comparisons"])
    assert (pair["winner"] is None) == (pair["p_adjusted"] >= 0.05)
    assert isinstance(payload["verdict"], str) and "deletion_morf (lower is better)" in payload["verdict"]
    assert payload["config"]["methods"][-4:] == list(CONTROLS)


def test_flags_name_a_method_that_does_not_beat_a_control(digits_eval):
    flags = digits_eval.flags()
    for flag in flags:
        assert flag["control"] in CONTROLS
        assert flag["winner"] != flag["method"] and flag["p_adjusted"] >= flag["p_value"]
        assert flag["words"] in digits_eval.verdict()
    assert not any(f["metric"] == "sparseness" for f in flags)  # descriptive, not a faithfulness claim
    ig_vs_random = next(row for row in digits_eval.controls_table() if row["a"] == "integrated_gradients"
                        and row["b"] == "control:random" and row["metric"] == "deletion_morf")
    assert ig_vs_random["winner"] == "integrated_gradients" and ig_vs_random["beats"]
    assert ig_vs_random["family"] == len(digits_eval._family())


def test_check_faithfulness_is_the_one_image_case_of_the_same_protocol(digits_cnn, digits):
    pixels = digits.x_test[:1]
    result = evaluate(digits_cnn, pixels, methods=["saliency"], metrics=["deletion_morf", "insertion"], steps=10)
    explanation = explainer.explain(digits_cnn, pixels, "saliency", target=[result.rows[0]["target"]])
    report = explainer.check_faithfulness(digits_cnn, explanation, steps=10, random_seeds=1, randomization=False)
    assert report.aucs["deletion"][0] == pytest.approx(result.scores("saliency", "deletion_morf")[0], abs=1e-9)
    assert report.aucs["insertion"][0] == pytest.approx(result.scores("saliency", "insertion")[0], abs=1e-9)
    assert report.aucs["random_deletion"][0] == pytest.approx(
        result.scores("control:random", "deletion_morf")[0], abs=1e-9)


def test_a_metric_is_one_registry_entry(digits_cnn, digits, monkeypatch):
    """A new metric needs only its MetricSpec: the scorer, the summary and the verdict read the registry."""
    from explainer.evidence import metrics as M

    seen = []

    def peak_share(inputs):
        seen.append(tuple(inputs.heat.shape))
        total = float(inputs.heat.sum())
        return M.Scored(float(inputs.heat.max()) / total if total > 0 else 0.0, None if total > 0 else "empty map")

    spec = M.MetricSpec("peak_share", "Share of relevance on the peak pixel", "higher", "max / sum", peak_share)
    monkeypatch.setitem(M.METRICS, "peak_share", spec)
    result = evaluate(digits_cnn, digits, methods=["saliency"], metrics=["peak_share", "sparseness"], limit=4,
                      progress=False)
    maps = sum(len(row["scores"]) for row in result.rows)  # saliency and every control, on 4 images
    assert maps == 4 * (1 + len(CONTROLS)) and len(seen) == maps and set(seen) == {(1, 8, 8)}
    for row in result.rows:
        assert set(row["scores"]["saliency"]) == {"peak_share", "sparseness"}
        assert 0 < row["scores"]["saliency"]["peak_share"] <= 1
    assert result.interval("saliency", "peak_share").n == 4
    assert "peak_share" in set(result.summary()["metric"])


def test_randomization_is_always_defined(digits_cnn, digits):
    result = evaluate(digits_cnn, digits, methods=["gradcam", "saliency"], metrics=["randomization"], limit=12,
                      randomization_steps=2, controls=True, progress=False)
    for row in result.rows:
        for method in ("gradcam", "saliency"):
            value = row["scores"][method]["randomization"]
            assert isinstance(value, float) and -1 <= value <= 1
            steps = row["randomization"][method]
            assert len(steps) == 2 and steps[-1]["step"] == "all"
            if steps[-1]["reason"] == "randomized map vanished":
                assert value == 0.0 and row["reasons"][method]["randomization"] == "randomized map vanished"
        for control in CONTROLS:  # a control's map does not depend on the weights: not applicable
            assert row["scores"][control]["randomization"] is None and "not applicable" in row["reasons"][control][
                "randomization"]
        assert set(row["randomization_null"]) == {"gradcam", "saliency"}
    assert result.interval("saliency", "randomization").mean < 0.5  # saliency changes with the weights
    assert result.interval("control:random", "randomization").n == 0


def test_known_answer_mask_metrics_and_controls():
    torch.set_num_threads(1)
    data = explainer.load_dataset("known_answer", n_train=400, n_test=40, size=16)
    model = trained_classifier("cnn", data, seed=0, epochs=8, target_accuracy=0.95)
    result = evaluate(model, data, methods=["integrated_gradients"], metrics=["mask_share", "pointing_game"],
                      limit=30)
    area = data.masks_test[:30].float().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(result.scores("control:centre", "mask_share").shape, (30,))
    assert result.interval("integrated_gradients", "mask_share").low > float(area.mean())
    assert result.interval("integrated_gradients", "mask_share").low > result.interval(
        "control:random", "mask_share").high
    hits = result.scores("integrated_gradients", "pointing_game")
    assert set(np.unique(hits)) <= {0.0, 1.0} and hits.mean() > 0.5


def test_metrics_on_known_maps():
    square = torch.zeros(1, 8, 8)
    square[0, 2:4, 2:4] = 1.0
    masks = square.bool().unsqueeze(1)
    share, why = mask_share_values(square, masks)
    assert share[0] == pytest.approx(1.0) and why == [None]
    empty_share, empty_why = mask_share_values(torch.zeros(1, 8, 8), masks)
    assert empty_share[0] == pytest.approx(4 / 64) and empty_why == ["empty map"]
    assert pointing_game(square, masks)[0] == 1.0
    assert pointing_game(torch.zeros(1, 8, 8), masks)[0] == pytest.approx(4 / 64)
    gini_flat, _ = gini(torch.ones(1, 8, 8))
    gini_one, _ = gini(torch.zeros(1, 8, 8).index_put_((torch.tensor([0]), torch.tensor([0]), torch.tensor([0])),
                                                         torch.tensor(1.0)))
    assert gini_flat[0] == pytest.approx(0.0, abs=1e-12) and gini_one[0] == pytest.approx(1 - 1 / 64)
    assert gini(torch.zeros(1, 4, 4))[1] == ["empty map"]


def test_road_imputation_solves_the_neighbour_equations():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 12, 12, generator=generator)
    removed = torch.rand(2, 1, 12, 12, generator=generator) < 0.4
    filled = noisy_linear_impute(image, removed, noise=0.0)
    keep = ~removed.expand_as(image)
    assert torch.equal(filled[keep], image[keep])
    weights = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
    padded = torch.nn.functional.pad(filled, (1, 1, 1, 1))
    ones = torch.nn.functional.pad(torch.ones_like(filled), (1, 1, 1, 1))
    kernel = weights.expand(3, 1, 3, 3)
    mean = torch.nn.functional.conv2d(padded, kernel, groups=3) / torch.nn.functional.conv2d(ones, kernel, groups=3)
    gap = (filled - mean)[removed.expand_as(image)].abs().max()
    assert gap < 2e-3, gap  # every imputed pixel is the weighted mean of its neighbours
    noisy = noisy_linear_impute(image, removed, noise=0.05, noise_seeds=[1, 2])
    again = noisy_linear_impute(image, removed, noise=0.05, noise_seeds=[1, 2])
    assert torch.equal(noisy, again) and not torch.equal(noisy, filled)
    assert torch.equal(noisy[keep], image[keep])


def test_controls_are_deterministic_and_shaped():
    pixels = explainer.load_dataset("digits").x_test[:3]
    for name in CONTROLS:
        first = control_maps(name, pixels, [1, 2, 3])
        assert first.shape == (3, 8, 8) and bool((first >= 0).all())
        assert torch.equal(first, control_maps(name, pixels, [1, 2, 3]))
    assert not torch.equal(control_maps("control:random", pixels, [1, 2, 3]),
                           control_maps("control:random", pixels, [4, 5, 6]))
    with pytest.raises(InputError, match="Unknown control"):
        control_maps("control:nothing", pixels, [1, 2, 3])


def test_bad_input_gets_clear_messages(digits_cnn, digits):
    with pytest.raises(InputError, match="Unknown attribution method"):
        evaluate(digits_cnn, digits, methods=["nope"], limit=2)
    with pytest.raises(InputError, match="needs ground-truth masks"):
        evaluate(digits_cnn, digits, methods=["saliency"], metrics=["mask_share"], limit=2)
    with pytest.raises(InputError, match="Unknown metric"):
        evaluate(digits_cnn, digits, methods=["saliency"], metrics=["accuracy"], limit=2)
    with pytest.raises(InputError, match="limit must be a positive integer"):
        evaluate(digits_cnn, digits, methods=["saliency"], limit=0)
    with pytest.raises(InputError, match="attribution maps need images"):
        evaluate(digits_cnn, "circle", methods=["saliency"])


# ------------------------------------------------------------------------ resume and Ray
_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
import explainer
from explainer.evidence.evaluate import evaluate
from explainer.learn.architectures import build_model
data = explainer.load_dataset("digits")
net = build_model("cnn", data, seed=0)
net.load_state_dict(torch.load(sys.argv[1], weights_only=True))
model = explainer.Classifier.from_module(net.eval(), labels=data.class_names, input_size=8, in_chans=1, name="digits")
result = evaluate(model, "digits", methods=["saliency"], limit=int(sys.argv[3]),
                  steps=10, randomization_steps=2, out=sys.argv[2] if sys.argv[2] != "-" else None,
                  backend=sys.argv[4], address=None if sys.argv[4] == "local" else "auto")
print(json.dumps(result.rows))
"""


def _digits_model(checkpoint: Path):
    from explainer.learn.architectures import build_model

    data = explainer.load_dataset("digits")
    net = build_model("cnn", data, seed=0)
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    return explainer.Classifier.from_module(net.eval(), labels=data.class_names, input_size=8, in_chans=1,
                                            name="digits")


def _reference(checkpoint: Path, limit: int) -> list[dict]:
    torch.set_num_threads(1)
    result = evaluate(_digits_model(checkpoint), "digits", methods=["saliency"], limit=limit, steps=10,
                      randomization_steps=2)
    return json.loads(json.dumps(result.rows))


@pytest.mark.slow
def test_a_killed_run_resumes_and_equals_an_uninterrupted_run(checkpoint, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    out = tmp_path / "rows.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, str(script), str(checkpoint), str(out), "30", "local"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if out.exists() and len(out.read_text().splitlines()) >= 5:  # header + 4 rows
            break
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    written = len(out.read_text().splitlines()) - 1
    assert 4 <= written < 30, written  # killed part-way
    rerun = subprocess.run([sys.executable, str(script), str(checkpoint), str(out), "30", "local"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # the estimate covers only the images the file lacks
    assert f"for {30 - written} image(s)" in rerun.stderr and f"({written} of 30 already in {out})" in rerun.stderr
    resumed = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert [row["image"] for row in resumed] == list(range(30))
    assert resumed == _reference(checkpoint, 30)
    opened = Evaluation.from_results(str(out))
    assert opened.n == 30 and opened.to_dict()["summary"] == evaluate_summary(resumed, opened)


def evaluate_summary(rows: list[dict], opened: Evaluation) -> list[dict]:
    return Evaluation(rows, opened.methods, opened.metrics, opened.config).to_dict()["summary"]


@pytest.mark.slow
def test_ray_backend_rows_equal_local_rows(private_ray_cluster, checkpoint, tmp_path):
    script = tmp_path / "run_ray.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    result = private_ray_cluster.run(script, str(checkpoint), "-", "8", "ray", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    assert rows == _reference(checkpoint, 8)


def test_ray_backend_without_ray_says_how_to_install(digits_cnn, digits, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r"pip install 'explainer\[ray\]'"):
        evaluate(digits_cnn, digits, methods=["saliency"], limit=2, backend="ray", **FAST)


# ------------------------------------------------------------------------------- CLI
def test_cli_json_on_digits_with_a_trained_cnn(capsys):
    code = cli_main(["evaluate", "--dataset", "digits", "--model", "train:cnn", "--method", "saliency", "--limit", "12",
                     "--metric", "deletion_morf", "insertion", "--steps", "8", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert set(payload) == KEYS
    assert {row["method"] for row in payload["summary"]} == {"saliency", *CONTROLS}
    assert "estimate: ≈" in captured.err and "took" in captured.err
    assert payload["config"]["estimate_seconds"] > 0 and payload["config"]["images"] == 12


def test_cli_rejects_train_model_without_a_dataset(tmp_path, photos, capsys):
    path = tmp_path / "cat.png"
    photos["cat"].save(path)
    assert cli_main(["evaluate", str(path), "--model", "train:cnn", "--method", "saliency"]) == 2
    assert "trains on a dataset's train split" in capsys.readouterr().err


# ------------------------------------------------------------------------------- figures
def test_figures_show_controls_distinctly_and_match_the_numbers(digits_eval):
    from explainer.plots.evidence import forest_plot, mean_curves, method_scatter

    figure = forest_plot(digits_eval)
    points = [t for t in figure.data if t.mode == "markers"]
    assert len(points) == len(digits_eval.methods) * len(digits_eval.available_metrics())
    for trace in points:
        control = trace.name.startswith("control:")
        assert (trace.marker.symbol == "diamond-open") == control
        assert (trace.marker.color == "#7f7f7f") == control
    ig = next(t for t in points if t.name == "integrated_gradients" and t.xaxis == "x")
    assert float(ig.x[0]) == pytest.approx(digits_eval.interval("integrated_gradients", "deletion_morf").mean, rel=1e-6)
    crosses = [t for t in figure.data if t.mode == "text"]
    assert len(crosses) == len({(f["method"], f["metric"]) for f in digits_eval.flags()})

    curves = mean_curves(digits_eval)
    line = next(t for t in curves.data if t.name == "saliency" and t.mode == "lines")
    np.testing.assert_allclose(line.y, digits_eval.curves("saliency", "deletion_morf").mean(axis=0), rtol=1e-5)
    dashes = {t.name: t.line.dash for t in curves.data if t.mode == "lines" and t.showlegend}
    assert dashes["saliency"] == "solid" and len({dashes[c] for c in CONTROLS}) == 4

    scatter = method_scatter(digits_eval, "integrated_gradients", "control:random", "deletion_morf")
    assert len(scatter.data[1].x) == 40 and "better than" in scatter.layout.title.text
    with pytest.raises(InputError, match="was not evaluated"):
        method_scatter(digits_eval, "gradcam", "saliency", "deletion_morf")


# ----------------------------------------------------------------------------- dashboard
def _trust_page(checkpoint: str) -> None:
    import sys as _sys
    from pathlib import Path as _Path

    import explainer as _explainer

    _sys.path.insert(0, str(_Path(_explainer.__file__).resolve().parents[1] / "dashboards"))
    import streamlit as st
    import torch as _torch
    from sections.trust import render_trust_section

    from explainer.learn.architectures import build_model

    data = _explainer.load_dataset("digits")
    net = build_model("cnn", data, seed=0)
    net.load_state_dict(_torch.load(checkpoint, weights_only=True))
    model = _explainer.Classifier.from_module(net.eval(), labels=data.class_names, input_size=8, in_chans=1,
                                              name="digits")
    images = {f"digit {i}": data.x_test[i] for i in range(6)}
    result = render_trust_section(model, key="t", images=images, default_methods=("saliency",))
    if result is not None:
        st.session_state["numbers"] = [row["scores"] for row in result.rows]


def test_dashboard_section_shows_the_estimate_first_and_equals_a_notebook_call(checkpoint):
    from streamlit.testing.v1 import AppTest

    torch.set_num_threads(1)
    at = AppTest.from_function(_trust_page, args=(str(checkpoint),), default_timeout=120).run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button] == ["Estimate the time"]  # nothing runs before the estimate
    at.slider(key="t_steps").set_value(6)
    at.multiselect(key="t_metrics").set_value(["deletion_morf", "insertion"])
    at.button(key="t_estimate").click().run()
    assert not at.exception, at.exception
    assert any("Estimate: ≈" in m.value for m in at.markdown)
    at.button(key="t_run").click().run()
    assert not at.exception, at.exception
    shown = at.session_state["numbers"]
    notebook = evaluate(_digits_model(checkpoint), [explainer.load_dataset("digits").x_test[i] for i in range(6)],
                        methods=["saliency"], metrics=["deletion_morf", "insertion"], limit=3, steps=6,
                        randomization_steps=2)
    assert shown == [row["scores"] for row in notebook.rows]
    assert any(line.value.startswith("- 3 image(s)") for line in at.markdown)
