"""Faithfulness evidence: deletion/insertion curves, randomization cascade, agreement, mask share, CLI, figures."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

import explainer
from explainer import InputError, check_faithfulness, mask_share, method_agreement
from explainer.attribution.explanation import Explanation, explain
from explainer.cli import main as cli_main
from explainer.evidence.faithfulness import area_under_curve, cascade_units, foreground_mask, rank_correlation
from explainer.plots.faithfulness import agreement_heatmap, faithfulness_curves, randomization_cascade

PHOTOS = ("cat", "coffee", "camera")
FAST = {"steps": 10, "random_seeds": 2}


# ------------------------------------------------------------------------- real photos
@pytest.fixture(scope="module")
def photo_batch(photos):
    return [photos[name] for name in PHOTOS]


@pytest.fixture(scope="module")
def gradcam(bundled_classifier, photo_batch):
    return explain(bundled_classifier, photo_batch, method="gradcam")


@pytest.fixture(scope="module")
def gradcam_report(bundled_classifier, photo_batch, gradcam):
    torch.set_num_threads(1)
    return check_faithfulness(bundled_classifier, gradcam, **FAST)


@pytest.fixture(scope="module")
def integrated_gradients(bundled_classifier, photo_batch):
    return explain(bundled_classifier, photo_batch, method="integrated_gradients", n_steps=16)


def _passes(report, key: str) -> int:
    return sum(verdict[key] for verdict in report.verdicts)


def test_gradcam_deletes_relevant_pixels_first_and_inserts_better_than_random(gradcam_report):
    aucs = gradcam_report.aucs
    assert _passes(gradcam_report, "morf_below_lerf") >= 2, aucs
    assert _passes(gradcam_report, "insertion_above_random") >= 2, aucs
    assert gradcam_report.mean_aucs["deletion"] < gradcam_report.mean_aucs["lerf_deletion"]
    curves = gradcam_report.morf
    assert curves.shape == (3, FAST["steps"] + 1) and gradcam_report.random_deletion.shape == (2, 3, 11)
    assert np.all((curves >= 0) & (curves <= 1))
    # Every order starts from the untouched image and ends at the all-baseline image.
    np.testing.assert_allclose(curves[:, 0], gradcam_report.lerf[:, 0], atol=1e-5)
    np.testing.assert_allclose(curves[:, -1], gradcam_report.random_deletion[0, :, -1], atol=1e-5)


def test_integrated_gradients_passes_deletion_and_insertion(bundled_classifier, photo_batch, integrated_gradients):
    report = check_faithfulness(bundled_classifier, integrated_gradients, randomization=False, **FAST)
    assert _passes(report, "morf_below_lerf") >= 2, report.aucs
    assert _passes(report, "insertion_above_random") >= 2, report.aucs
    assert report.randomization == [] and "changes_when_randomized" not in report.verdicts[0]


def test_randomization_changes_gradcam(bundled_classifier, photo_batch, gradcam, gradcam_report):
    again = explain(bundled_classifier, photo_batch, method="gradcam")
    same = [rank_correlation(gradcam.heatmap(True)[i], again.heatmap(True)[i]) for i in range(3)]
    assert min(same) > 0.99  # the same weights give the same map
    final = gradcam_report.randomization_correlation
    defined = final[np.isfinite(final)]
    assert all(not c >= 0.5 for c in final), final  # NaN = the randomized map became constant
    assert defined.size == 0 or defined.mean() < 0.5
    assert all(v["changes_when_randomized"] for v in gradcam_report.verdicts)
    steps = gradcam_report.randomization
    assert len(steps) == 4 and steps[0].layers == ["classifier"] and steps[-1].name == "all"
    assert steps[-1].layers == cascade_units(bundled_classifier.module)
    assert "Model randomization" in gradcam_report.verdict()
    assert list(gradcam_report.summary()["image"]) == list(range(len(gradcam_report.targets)))


def test_randomization_never_modifies_the_users_model(bundled_classifier, photo_batch, gradcam):
    before = {k: v.clone() for k, v in bundled_classifier.module.state_dict().items()}
    check_faithfulness(bundled_classifier, _subset(gradcam, 1), steps=2, random_seeds=1)
    for key, value in bundled_classifier.module.state_dict().items():
        assert torch.equal(value, before[key]), f"check_faithfulness changed the user's model ({key})"
    assert not bundled_classifier.module.training


def _subset(explanation: Explanation, count: int) -> Explanation:
    from dataclasses import replace

    return replace(
        explanation, attributions=explanation.attributions[:count], inputs=explanation.inputs[:count],
        pixels=explanation.pixels[:count], targets=explanation.targets[:count], labels=explanation.labels[:count],
    )


def test_method_agreement_is_symmetric_with_unit_diagonal(
    bundled_classifier, photo_batch, gradcam, integrated_gradients
):
    saliency = explain(bundled_classifier, photo_batch, method="saliency")
    names, matrix = method_agreement([gradcam, integrated_gradients, saliency])
    assert names == ["gradcam", "integrated_gradients", "saliency"]
    assert matrix.shape == (3, 3) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    assert np.all(np.abs(matrix) <= 1 + 1e-6)
    expected = np.mean([
        rank_correlation(gradcam.heatmap(True)[i], saliency.heatmap(True)[i], foreground_mask(gradcam.pixels)[i])
        for i in range(3)
    ])
    assert matrix[0, 2] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(InputError, match="at least two"):
        method_agreement([gradcam])
    with pytest.raises(InputError, match="different images"):
        method_agreement([gradcam, _subset(saliency, 2)])


# --------------------------------------------------------- a model whose answer is known
def _linear_problem(images: int = 2, size: int = 12):
    """Logit(target) = w·x − 4 with positive weights spread over two decades; input×gradient = w·x exactly."""
    generator = torch.Generator().manual_seed(1)
    features = 3 * size * size
    weights = torch.logspace(0, 2, features)[torch.randperm(features, generator=generator)]
    pixels = torch.rand(images, 3, size, size, generator=generator) * 0.8 + 0.2
    scale = 8.0 / float((pixels[0].flatten() * weights).sum())
    linear = nn.Linear(features, 2)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[1] = weights * scale
        linear.bias[1] = -4.0
    classifier = explainer.Classifier.from_module(
        nn.Sequential(nn.Flatten(), linear), labels=["other", "target"], input_size=size, name="linear"
    )
    return classifier, pixels


def test_a_perfect_map_orders_morf_below_random_below_lerf():
    classifier, pixels = _linear_problem()
    perfect = explain(classifier, pixels, method="input_x_gradient", target=1)
    report = check_faithfulness(classifier, perfect, steps=10, random_seeds=3, randomization=False)
    aucs = report.aucs
    assert np.all(aucs["deletion"] < aucs["random_deletion"]), aucs
    assert np.all(aucs["random_deletion"] < aucs["lerf_deletion"]), aucs
    # Pointwise too: removing the largest contributions first can never leave more evidence.
    mean_random = report.random_band("deletion")[0]
    assert np.all(report.morf <= mean_random + 1e-6) and np.all(mean_random <= report.lerf + 1e-6)
    for verdict in report.verdicts:
        assert verdict["morf_below_lerf"] and verdict["insertion_above_random"] and verdict["deletion_below_random"]
    assert report.fractions[0] == 0 and report.fractions[-1] == 1
    # Insertion is a curve of its own (blurred canvas), not LeRF read backwards – yet it ends at the image.
    assert not np.allclose(report.insertion, report.lerf[:, ::-1], atol=1e-3)
    assert not np.allclose(report.aucs["insertion"], report.aucs["lerf_deletion"], atol=1e-3)
    np.testing.assert_allclose(report.insertion[:, -1], report.morf[:, 0], atol=1e-5)


def test_an_inverted_map_fails_and_the_report_says_so():
    classifier, pixels = _linear_problem(images=1)
    perfect = explain(classifier, pixels, method="input_x_gradient", target=1)
    from dataclasses import replace

    inverted = replace(perfect, method="inverted", attributions=1.0 / (perfect.attributions.abs() + 1e-3))
    # sigma20: on this 12 px linear problem RISE's 11 x 11, sigma 5 canvas is nearly the image mean everywhere
    report = check_faithfulness(classifier, inverted, steps=10, random_seeds=2, randomization=False,
                                insertion_blur="sigma20", progress=False)
    assert report.verdicts[0]["morf_below_lerf"] is False
    assert report.verdicts[0]["insertion_above_random"] is False
    assert "fails on image 0 (target)" in report.verdict()
    assert bool(report.summary()["morf_below_lerf"][0]) is False
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["verdicts"][0]["morf_below_lerf"] is False
    assert len(payload["curves"]["random_deletion_mean"][0]) == 11


def test_blur_baseline_changes_what_deleted_pixels_become():
    classifier, pixels = _linear_problem(images=1)
    perfect = explain(classifier, pixels, method="input_x_gradient", target=1)
    zeros = check_faithfulness(classifier, perfect, steps=4, random_seeds=1, randomization=False)
    blur = check_faithfulness(
        classifier, perfect, steps=4, random_seeds=1, baseline="blur", randomization=False
    )
    assert blur.protocol["baseline"] == "blur"
    assert blur.morf[0, -1] > zeros.morf[0, -1] + 0.5  # a blurred image keeps most of w·x, zeros keep none


def test_area_under_known_curves():
    x = np.linspace(0, 1, 101)
    assert area_under_curve(x, 1 - x) == pytest.approx(0.5)
    assert area_under_curve(x, x**2) == pytest.approx(1 / 3, abs=1e-4)
    np.testing.assert_allclose(area_under_curve(x, np.stack([np.ones_like(x), x])), [1.0, 0.5])


def test_rank_correlation_matches_scipy_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (200,), generator=generator).float()
    b = a + torch.randint(0, 3, (200,), generator=generator).float()
    assert rank_correlation(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)
    assert math.isnan(rank_correlation(torch.ones(10), torch.arange(10.0)))


def test_background_masking_removes_spurious_agreement_on_zero_background():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.zeros(1, 1, 16, 16)
    pixels[:, :, 5:11, 5:11] = torch.rand(1, 1, 6, 6, generator=generator) * 0.1 + 0.8
    # Two unrelated gradient fields times the input: both maps are zero on the background.
    map_a = (pixels * torch.randn(1, 1, 16, 16, generator=generator)).abs().sum(1)[0]
    map_b = (pixels * torch.randn(1, 1, 16, 16, generator=generator)).abs().sum(1)[0]
    mask = foreground_mask(pixels)[0]
    assert mask.equal(pixels[0, 0] > 0)  # the object, not its zero rim
    everywhere = rank_correlation(map_a, map_b)
    foreground = rank_correlation(map_a, map_b, mask)
    assert everywhere > 0.6 and abs(foreground) < 0.35 and foreground < everywhere - 0.4
    assert bool(foreground_mask(torch.full((1, 1, 4, 4), 0.5)).all())  # a flat image keeps its pixels
    noisy = explainer.load_dataset("known_answer", n_train=4, n_test=4).x_test
    assert bool(foreground_mask(noisy).all())  # no constant background: the decisive square stays in


def _explanation_from_map(values: torch.Tensor, pixels: torch.Tensor) -> Explanation:
    return Explanation(
        method="given", attributions=values.float(), inputs=pixels, pixels=pixels, targets=[0] * len(pixels),
        labels=["x"] * len(pixels), params={}, seconds=0.0, device="cpu", model_name="none",
    )


def test_mask_share_of_the_mask_itself_is_one():
    data = explainer.load_dataset("known_answer", n_train=4, n_test=6)
    masks = data.masks_test
    exact = mask_share(_explanation_from_map(masks.float().expand(-1, 3, -1, -1), data.x_test), masks)
    np.testing.assert_allclose(exact.share, 1.0)
    np.testing.assert_allclose(exact.area_share, masks.float().mean(dim=(1, 2, 3)).numpy())
    uniform = mask_share(_explanation_from_map(torch.ones_like(data.x_test), data.x_test), masks[:, 0])
    np.testing.assert_allclose(uniform.share, uniform.area_share)
    assert exact.to_dict()["mean_share"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="masks must match"):
        mask_share(_explanation_from_map(torch.ones_like(data.x_test), data.x_test), masks[:, :, :8])


# ------------------------------------------------------------------------- bad input
def test_bad_input_gets_clear_messages(bundled_classifier, gradcam):
    with pytest.raises(InputError, match="steps must be an integer from 2 to 1000"):
        check_faithfulness(bundled_classifier, gradcam, steps=1)
    with pytest.raises(InputError, match="steps must be an integer from 2 to 1000"):
        check_faithfulness(bundled_classifier, gradcam, steps=10**7)
    with pytest.raises(InputError, match="steps must be an integer"):
        check_faithfulness(bundled_classifier, gradcam, steps=True)
    with pytest.raises(InputError, match="baseline='noise' is not supported; choose one of: zero, black, white, blur"):
        check_faithfulness(bundled_classifier, gradcam, baseline="noise", randomization=False)
    with pytest.raises(InputError, match="random_seeds must be an integer from 1 to 100"):
        check_faithfulness(bundled_classifier, gradcam, random_seeds=0)
    with pytest.raises(InputError, match="must be an Explanation"):
        check_faithfulness(bundled_classifier, gradcam.attributions)
    classifier, _pixels = _linear_problem(images=1)
    with pytest.raises(InputError, match="computed with other weights \\(model 'efficientnet_lite0'\\)"):
        check_faithfulness(classifier, gradcam)


def test_an_explanation_is_checked_against_the_weights_it_came_from_not_the_name():
    classifier, pixels = _linear_problem(images=1)
    explanation = explain(classifier, pixels, method="saliency", target=1)
    twin_module = copy.deepcopy(classifier.module)
    same_weights = explainer.Classifier.from_module(twin_module, labels=classifier.labels,
                                                    input_size=classifier.input_size, mean=classifier.mean,
                                                    std=classifier.std, name=classifier.name)
    check_faithfulness(same_weights, explanation, steps=4, random_seeds=1, randomization=False)  # equal weights pass
    with torch.no_grad():
        next(twin_module.parameters()).add_(1.0)  # same architecture and name, other weights
    with pytest.raises(InputError, match="other weights"):
        check_faithfulness(same_weights, explanation, steps=4, random_seeds=1, randomization=False)


def test_the_old_call_with_images_still_works_and_warns():
    classifier, pixels = _linear_problem(images=1)
    perfect = explain(classifier, pixels, method="input_x_gradient", target=1)
    new = check_faithfulness(classifier, perfect, steps=4, random_seeds=1, randomization=False)
    with pytest.warns(DeprecationWarning, match="the explanation carries its images"):
        old = check_faithfulness(classifier, pixels, perfect, steps=4, random_seeds=1, randomization=False)
    np.testing.assert_array_equal(old.morf, new.morf)


def test_a_vanished_randomized_map_has_similarity_zero_with_a_reason():
    from explainer.evidence.randomization import map_similarity

    a = torch.arange(16.0).view(4, 4)
    assert map_similarity(a, torch.zeros(4, 4)) == (0.0, "randomized map vanished")
    assert map_similarity(torch.zeros(4, 4), a) == (0.0, "original map constant")
    assert map_similarity(torch.zeros(4, 4), torch.zeros(4, 4)) == (1.0, "both maps constant")
    value, reason = map_similarity(a, a.flip(0))
    assert reason is None and value == pytest.approx(rank_correlation(a, a.flip(0)))


# ------------------------------------------------------------------------ CLI, figures
def test_cli_check_json_has_every_key(photos, tmp_path, capsys):
    path = tmp_path / "cat.png"
    photos["cat"].save(path)
    assert cli_main(["check", str(path), "--method", "gradcam", "--steps", "6", "--seeds", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    assert row["image"] == str(path) and row["method"] == "gradcam" and row["label"] == "Egyptian cat"
    keys = ("deletion_auc", "lerf_deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc",
            "randomization_correlation")
    for key in keys:
        assert isinstance(row[key], float) and math.isfinite(row[key]), (key, row[key])
    assert row["deletion_auc"] < row["lerf_deletion_auc"]


def test_cli_check_rejects_a_parameter_no_method_takes(photos, tmp_path, capsys):
    path = tmp_path / "cat.png"
    photos["cat"].save(path)
    assert cli_main(["check", str(path), "--method", "gradcam", "--param", "n_steps=8"]) == 2
    assert "--param n_steps is not a parameter of gradcam" in capsys.readouterr().err


def test_figures_show_curves_band_cascade_and_agreement(gradcam_report):
    figure = faithfulness_curves(gradcam_report, image=0)
    names = [trace.name for trace in figure.data]
    assert any(name.startswith("most relevant first (MoRF), AUC") for name in names)
    band = next(trace for trace in figure.data if trace.fill == "toself")
    assert band.y.dtype == np.float32 and len(band.y) == 2 * (FAST["steps"] + 1)
    half = FAST["steps"] + 1
    assert np.all(band.y[:half] >= band.y[half:][::-1] - 1e-6)  # upper edge above the lower edge
    morf = next(trace for trace in figure.data if trace.name.startswith("most relevant"))
    np.testing.assert_allclose(morf.y, gradcam_report.morf[0], rtol=1e-6)
    assert len(faithfulness_curves(gradcam_report).data) == len(figure.data)
    with pytest.raises(InputError, match="image must be between 0 and 2"):
        faithfulness_curves(gradcam_report, image=3)

    cascade = randomization_cascade([gradcam_report])
    assert list(cascade.data[0].x) == [step.name for step in gradcam_report.randomization]

    heat = agreement_heatmap(["a", "b"], np.array([[1.0, -0.2], [-0.2, 1.0]]))
    assert heat.data[0].zmid == 0 and heat.data[0].z.dtype == np.float32
