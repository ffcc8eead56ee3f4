"""TCAV with its two significance tests on a small CNN trained on known_answer (real model, real data)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import explainer
from explainer.errors import InputError


@pytest.fixture(scope="module")
def sets(known_answer_cnn):
    """30 class-0 training images (the square in quadrant 0: what class 0 is), 400 other training images of
    every class as the random images, 30 more of them as concepts with no label information (one with 6 of 30
    class-0 images, like the pool; one with 12: a random draw that is unusually rich in class 0), class-0 test
    inputs. The concept never shares an image with the random pool."""
    classifier, data = known_answer_cnn
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(1))
    x, y = data.x_train[order], data.y_train[order]
    square = torch.nonzero(y == 0).flatten()[:30]
    others = torch.ones(len(y), dtype=torch.bool)
    others[square] = False
    rest = x[others]
    return {"classifier": classifier, "square": x[square], "random": rest[:400], "uninformative": rest[400:430],
            "rich_in_class_0": rest[490:520], "inputs": data.x_test[data.y_test == 0]}


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


def test_the_causal_concept_is_significant_and_nothing_is_touched(sets, tmp_path, monkeypatch):
    classifier = sets["classifier"]
    module = classifier.module
    monkeypatch.chdir(tmp_path)
    module.train()
    try:
        before, hooks, rng = copy.deepcopy(module.state_dict()), _hooks(module), torch.get_rng_state()
        result = explainer.tcav(classifier, sets["square"], sets["random"], layers=["1", "4"], target="top-left",
                                inputs=sets["inputs"], progress=False)
        assert module.training and _hooks(module) == hooks and torch.equal(torch.get_rng_state(), rng)
        after = module.state_dict()
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    finally:
        module.eval()
    assert list(tmp_path.iterdir()) == []  # nothing written (no CAV files in the cwd)
    assert result.target == 0 and result.runs == 10 and result.test == "permutation" and result.permutations == 99
    for row in result.layers:  # the smallest p a permutation test can give, Holm never lowers it
        assert 1 / 100 <= row.p_value <= row.p_adjusted <= 1
        assert row.significant == (row.p_adjusted < explainer.stats.ALPHA)
        assert row.score.mean > row.null.mean and len(row.concept_scores) == 10 and len(row.null_scores) == 99
    first = result.layers[0]
    # at most one of 99 pseudo-concepts as far: the concept scores 1.0, and a pseudo-concept can tie it there
    # (measured 0.01 and 0.02 in runs whose CNN trained with different thread counts)
    assert first.layer == "1" and first.significant and first.p_value <= 2 / 100
    frame = result.summary()
    assert list(frame["layer"]) == ["1", "4"] and frame["significant"].iloc[0]
    assert "sensitive towards the concept" in result.verdict() and "permutation test" in result.verdict()
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["layers"][0]["layer"] == "1" and "exact under exchangeability" in payload["test_description"]


def test_kims_test_claims_the_causal_concept_at_both_layers(sets):
    result = explainer.tcav(sets["classifier"], sets["square"], sets["random"], layers=["1", "4"], target=0,
                            inputs=sets["inputs"], test="kim", progress=False)
    assert result.test == "kim" and result.permutations == 0 and result.disjoint
    assert all(row.significant and row.score.low > row.null.mean for row in result.layers)
    assert "Student t-test" in result.verdict()


@pytest.mark.parametrize("test", ["permutation", "kim"])
def test_a_concept_without_label_information_is_not_significant(sets, test):
    """30 further random training images (6 of class 0, as in the pool): no claim under either test. Not every
    such set passes Kim's test – ``benchmarks/mechanisms.py`` measures both tests' false-positive rates."""
    result = explainer.tcav(sets["classifier"], sets["uninformative"], sets["random"], layers=["1", "4"], target=0,
                            inputs=sets["inputs"], test=test, progress=False)
    assert not any(row.significant for row in result.layers)
    assert result.verdict().count("not significant: no claim") == 2


def test_scores_are_captums_on_the_same_sets(sets, tmp_path):
    """Each concept-vs-random score equals ``captum.concept.TCAV.interpret``'s with the same CAV classifier, on
    a concept whose scores vary (the uninformative one), at both layers."""
    from captum.concept import TCAV, Concept

    from explainer.inside.cav import LinearCav

    classifier, concept, pool = sets["classifier"], sets["uninformative"], sets["random"]
    result = explainer.tcav(classifier, concept, pool, layers=["1", "4"], target=0, inputs=sets["inputs"],
                            test="kim", progress=False)
    order = np.random.default_rng(0).permutation(len(pool))  # the disjoint random concepts tcav draws with seed 0
    randoms = [pool[order[i * 30 : (i + 1) * 30]] for i in range(10)]
    concepts = [Concept(0, "concept", [classifier.normalize(concept)])]
    concepts += [Concept(i + 1, f"random_{i}", [classifier.normalize(r)]) for i, r in enumerate(randoms)]
    captum = TCAV(classifier.module, layers=["1", "4"], classifier=LinearCav(0), save_path=str(tmp_path))
    scores = captum.interpret(classifier.normalize(sets["inputs"]), target=0,
                              experimental_sets=[[concepts[0], other] for other in concepts[1:]])
    for row in result.layers:
        expected = [float(scores[f"0-{i + 1}"][row.layer]["sign_count"][0]) for i in range(10)]
        assert row.concept_scores == pytest.approx(expected, abs=1e-6)
        assert len(set(expected)) > 1  # the scores vary: the check is not "every score is 1"


def test_bad_runs_tests_permutations_and_layers_are_refused(sets):
    classifier, square, pool = sets["classifier"], sets["square"], sets["random"]
    with pytest.raises(InputError, match=r"runs must be an integer ≥ 10.*runs=10"):
        explainer.tcav(classifier, square, pool, layers="1", target=0, runs=5)
    with pytest.raises(InputError, match="Unknown layer"):
        explainer.tcav(classifier, square, pool, layers="conv9", target=0)
    with pytest.raises(InputError, match="Unknown test 't'; pick one of permutation, kim"):
        explainer.tcav(classifier, square, pool, layers="1", target=0, test="t")
    with pytest.raises(InputError, match=r"permutations must be an integer ≥ 40 for 2 layer\(s\).*permutations=99"):
        explainer.tcav(classifier, square, pool, layers=["1", "4"], target=0, permutations=20)
    with pytest.raises(InputError, match=r"at least 120 random images.*test='kim'"):
        explainer.tcav(classifier, square, pool[:100], layers="1", target=0)


def test_concept_sets_draw_a_class_and_random_images_that_never_overlap():
    data = explainer.load_dataset("known_answer", n_train=200, n_test=8, seed=0)
    concept, random = explainer.concept_sets(data, "top-left", size=12, random=48, seed=3)
    assert concept.shape[0] == 12 and random.shape[0] == 48
    members = {tuple(image.flatten().tolist()) for image in data.x_train[data.y_train == 0]}
    assert all(tuple(image.flatten().tolist()) in members for image in concept)
    chosen = {tuple(image.flatten().tolist()) for image in concept}
    assert not chosen & {tuple(image.flatten().tolist()) for image in random}
    again = explainer.concept_sets(data, 0, size=12, random=48, seed=3)
    assert torch.equal(again[0], concept) and torch.equal(again[1], random)  # seeded
    with pytest.raises(InputError, match="'stripes' is not a class of known_answer; pick one of top-left"):
        explainer.concept_sets(data, "stripes")
    with pytest.raises(InputError, match="random must be from 2 to"):
        explainer.concept_sets(data, 0, random=10_000)


# ------------------------------------------------------------------------ estimate, progress and budget
def test_tcav_prints_an_estimate_and_a_bar_over_the_cavs_and_nothing_without_progress(sets, capsys):
    classifier = sets["classifier"]
    call = {"layers": ["4"], "target": 0, "inputs": sets["inputs"][:8], "test": "kim"}
    shown = explainer.tcav(classifier, sets["square"][:6], sets["random"][:60], **call)
    err = capsys.readouterr().err
    assert "estimate: ≈" in err and "20 CAV fits ×" in err and "66 forward pass(es)" in err and "measured on cpu" in err
    assert "tcav: 100%" in err and "20/20" in err
    silent = explainer.tcav(classifier, sets["square"][:6], sets["random"][:60], progress=False, **call)
    assert capsys.readouterr().err == ""
    assert silent.layers[0].concept_scores == shown.layers[0].concept_scores


def test_tcav_over_budget_is_refused_before_the_work_with_the_estimate(sets, capsys):
    classifier = sets["classifier"]
    seen: list[int] = []
    handle = classifier.module.register_forward_pre_hook(lambda _m, args: seen.append(int(args[0].shape[0])))
    try:
        with pytest.raises(InputError, match=r"This tcav call is estimated at ≈ .*1,000 CAV fits.*over the time budget"
                                             r".*fewer permutations \(permutations=99 now\).*budget_seconds=None"):
            explainer.tcav(classifier, sets["square"], sets["random"], layers=["1", "4"], target=0,
                           inputs=sets["inputs"], budget_seconds=1e-3)
    finally:
        handle.remove()
    assert sum(seen) <= 2 * 34  # at most the timed passes (forward; forward + backward), not the 2 × 430 forwards
    assert "tcav:" not in capsys.readouterr().err
