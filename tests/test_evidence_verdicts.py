"""Verdicts of explainer.evaluate a statistician would sign: the enough rule, Holm over one family, every control,
the randomization null, and the metrics as their papers define them (pointing game 15 px, RISE blur, ROAD LeRF).

Real digits CNN (trained in a fixture, ~1 s) for the studies; constructed per-image rows only where a test is
about the decision rule itself (a family whose Holm adjustment flips a decision, a method that loses to random).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explainer
from explainer import InputError
from explainer.cli import main as cli_main
from explainer.evidence import metrics as M
from explainer.evidence.controls import CONTROLS
from explainer.evidence.curves import insertion_canvas
from explainer.evidence.evaluate import evaluate, trained_classifier
from explainer.evidence.evaluation import NULL, Evaluation
from explainer.evidence.image_scoring import Settings, randomized_copies
from explainer.evidence.map_scores import pointing_game, pointing_tolerance
from explainer.stats import MIN_SAMPLES

QUICK = {"steps": 4, "randomization_steps": 1, "progress": False}
REAL = ["deletion_morf", "sparseness"]  # sparseness: IG is far more concentrated than saliency on digits


@pytest.fixture(scope="module")
def digits():
    return explainer.load_dataset("digits")


@pytest.fixture(scope="module")
def digits_cnn(digits):
    torch.set_num_threads(1)
    return trained_classifier("cnn", digits, seed=0)


# ----------------------------------------------------------------------------- the enough rule
def test_three_images_name_no_winner_and_say_why(digits_cnn, digits):
    result = evaluate(digits_cnn, digits, methods=["integrated_gradients", "saliency"], metrics=REAL, limit=3, **QUICK)
    assert not result.enough and result.n == 3 < MIN_SAMPLES
    assert all(result.best(metric).winner is None for metric in REAL)
    verdict = result.verdict()
    assert "too few to name a winner: run ≥ 5 images" in verdict
    assert "of 3 images favour" in verdict and " is best" not in verdict and "Every method beats" not in verdict
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["enough"] is False and payload["flags"] == []
    assert all(best["winner"] is None and best["enough"] is False for best in payload["best"].values())
    assert all(row["winner"] is None for row in payload["comparisons"])


def test_cli_json_on_two_images_says_enough_false(capsys):
    code = cli_main(["evaluate", "--dataset", "digits", "--model", "train:cnn", "--method", "integrated_gradients", "saliency",
                     "--limit", "2", "--metric", *REAL, "--steps", "4", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["enough"] is False and payload["min_samples"] == MIN_SAMPLES
    assert "2 of 2 images favour" in payload["verdict"] and "run ≥ 5 images" in payload["verdict"]
    assert "estimate: ≈" in captured.err and "evaluate: 100%" in captured.err


def test_enough_images_and_a_real_difference_name_the_winner(digits_cnn, digits):
    result = evaluate(digits_cnn, digits, methods=["integrated_gradients", "saliency"], metrics=REAL, limit=12, **QUICK)
    best = result.best("sparseness")
    assert result.enough and best.winner == "integrated_gradients"
    assert best.comparisons[0].family == len(result._family()) > 1  # adjusted over the whole verdict's family
    assert "sparseness (higher is better): integrated_gradients is best" in result.verdict()
    random = next(row for row in result.controls_table() if row["a"] == "integrated_gradients"
                  and row["b"] == "control:random" and row["metric"] == "deletion_morf")
    assert random["beats"] and random["p_adjusted"] < 0.05 <= 1.0


# ----------------------------------------------------------------------------- Holm, controls
def _rows(values: dict[str, dict[str, list[float]]]) -> list[dict]:
    count = len(next(iter(next(iter(values.values())).values())))
    return [{"name": f"image {i}", "scores": {m: {k: v[i] for k, v in per.items()} for m, per in values.items()}}
            for i in range(count)]


def _constructed(metrics: list[str]) -> Evaluation:
    control = [0.50, 0.52, 0.48, 0.51, 0.49, 0.50, 0.53, 0.47]
    method = [c - d for c, d in zip(control, [0.06, 0.01, 0.05, 0.0, 0.04, 0.07, -0.01, 0.03])]
    values = {"m": {k: method for k in metrics}, "control:random": {k: control for k in metrics}}
    return Evaluation(_rows(values), ["m", "control:random"], metrics, {"steps": 4})


def test_holm_over_the_family_changes_a_decision():
    alone = _constructed(["deletion_morf"])
    (c,) = alone._family().values()
    assert 0.01 < c.p_value < 0.05 and c.winner == "m"  # lower deletion: m beats random on its own
    assert not alone.flags()
    family = _constructed(["deletion_morf", "road_morf", "insertion", "deletion_lerf"])
    member = family._family()[("control", "deletion_morf", "m", "control:random")]
    assert member.p_value == pytest.approx(c.p_value) and member.family == 4
    assert member.p_adjusted > 0.05 and member.winner is None  # the same test fails after Holm over 4
    assert any(f["metric"] == "deletion_morf" and not f["loses"] for f in family.flags())
    assert "Every method beats" not in family.verdict() and "Every method beats" in alone.verdict()


def test_losing_to_the_random_control_is_flagged():
    random = [0.40, 0.42, 0.38, 0.41, 0.39, 0.40]
    worse = [r + 0.2 + 0.01 * i for i, r in enumerate(random)]  # higher deletion AUC: worse than random
    result = Evaluation(_rows({"m": {"deletion_morf": worse}, "control:random": {"deletion_morf": random}}),
                        ["m", "control:random"], ["deletion_morf"], {"steps": 4})
    (flag,) = result.flags()
    assert flag["control"] == "control:random" and flag["loses"] and flag["winner"] == "control:random"
    assert "m loses to control:random on deletion_morf" in result.verdict()


# ----------------------------------------------------------------------------- randomization
def test_randomization_judged_against_a_null_from_independent_copies(digits_cnn, digits):
    settings = Settings(methods=("saliency",), params={}, metrics=("randomization",), steps=4, baseline="zero",
                        road_noise=M.ROAD_NOISE, randomization_steps=1, seed=0, targets=None, batch_size=None,
                        memory_budget_mb=None)
    copies = randomized_copies(digits_cnn, settings)
    assert len(copies) == M.RANDOMIZATION_COPIES >= 3
    weights = [next(c[-1].classifier.module.parameters()).detach() for c in copies]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    result = evaluate(digits_cnn, digits, methods=["saliency"], metrics=["randomization"], limit=6, **QUICK)
    null = result.null_scores("saliency")
    assert null.shape == (6,) and np.isfinite(null).all() and (np.abs(null) <= 1).all()
    assert result.config["randomization_copies"] == 3
    table = [row for row in result.controls_table() if row["metric"] == "randomization"]
    assert [row["b"] for row in table] == [NULL]  # judged against the null, not against the controls
    assert all(result.scores(c, "randomization").size == 6 and np.isnan(result.scores(c, "randomization")).all()
               for c in CONTROLS)
    assert "randomization against the null" in result.verdict() and "not applicable" in result.verdict()
    with pytest.raises(InputError, match="randomization_copies"):
        evaluate(digits_cnn, digits, methods=["saliency"], metrics=["randomization"], limit=2,
                 randomization_copies=1, **QUICK)


# ----------------------------------------------------------------------------- metrics
def test_pointing_game_hits_within_15_px_at_224():
    mask = torch.zeros(1, 1, 224, 224, dtype=torch.bool)
    mask[..., 100:120, 100:120] = True
    assert pointing_tolerance(224, 224) == 15.0 and pointing_tolerance(8, 8) == pytest.approx(15 * 8 / 224)
    for distance, hit in ((0, 1.0), (14, 1.0), (15, 1.0), (16, 0.0), (40, 0.0)):
        heat = torch.zeros(1, 224, 224)
        heat[0, 110, 119 + distance] = 1.0
        assert pointing_game(heat, mask)[0] == hit, distance
    signed = torch.zeros(1, 224, 224)
    signed[0, 10, 10] = -5.0  # strong negative evidence far away does not count
    signed[0, 110, 110] = 0.5
    assert pointing_game(signed, mask)[0] == 1.0
    small = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    small[..., 2:4, 2:4] = True
    near = torch.zeros(1, 8, 8)
    near[0, 2, 4] = 1.0  # adjacent to the mask: beyond the 0.54 px tolerance at 8 px
    assert pointing_game(near, small)[0] == 0.0


def test_insertion_canvas_is_rises_kernel_by_default():
    from torchvision.transforms.functional import gaussian_blur

    image = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(insertion_canvas(image), gaussian_blur(image, [11, 11], [5.0, 5.0]))
    old = insertion_canvas(image, "sigma20")
    assert (old - image).abs().mean() > (insertion_canvas(image) - image).abs().mean()  # sigma 11.2: stronger
    with pytest.raises(InputError, match="insertion_blur"):
        insertion_canvas(image, "box")


def test_road_in_both_orders(digits_cnn, digits):
    result = evaluate(digits_cnn, digits, methods=["integrated_gradients"], metrics=["road_morf", "road_lerf"],
                      limit=8, controls=False, **QUICK)
    morf, lerf = result.curves("integrated_gradients", "road_morf"), result.curves("integrated_gradients", "road_lerf")
    np.testing.assert_allclose(morf[:, 0], lerf[:, 0], atol=1e-6)  # the untouched image
    assert result.interval("integrated_gradients", "road_lerf").mean > result.interval(
        "integrated_gradients", "road_morf").mean + 0.1
    assert M.METRICS["road_lerf"].better == "higher"


# ----------------------------------------------------------------------------- long calls
def test_estimate_progress_and_budget(digits_cnn, digits, capsys):
    evaluate(digits_cnn, digits, methods=["saliency"], metrics=["deletion_morf"], limit=2, steps=4, progress=False)
    assert capsys.readouterr().err == ""
    evaluate(digits_cnn, digits, methods=["saliency"], metrics=["deletion_morf"], limit=2, steps=4)
    err = capsys.readouterr().err
    assert "estimate: ≈" in err and "evaluate: 100%" in err
    with pytest.raises(InputError, match="over the time budget.*fewer images"):
        evaluate(digits_cnn, digits, methods=["saliency"], limit=50, steps=4, budget_seconds=1e-4, progress=False)
    explanation = explainer.explain(digits_cnn, digits.x_test[:2], "saliency")
    report = explainer.check_faithfulness(digits_cnn, explanation, steps=4, random_seeds=1, road=True)
    err = capsys.readouterr().err
    assert "estimate: ≈" in err and "check_faithfulness: 100%" in err
    assert report.road_lerf is not None and "road_lerf_deletion" in report.aucs
    with pytest.raises(InputError, match="over the time budget"):
        explainer.check_faithfulness(digits_cnn, explanation, steps=4, budget_seconds=1e-6, progress=False)
