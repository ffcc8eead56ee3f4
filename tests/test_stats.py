"""explainer.stats: bootstrap intervals cover the truth, paired differences, verdict words, variance shares."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from explainer.errors import InputError
from explainer.stats import Interval, difference_words, mean_interval, paired_difference, share_of_variance


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = sum(mean_interval(rng.normal(3.0, 1.0, 40), seed=i, resamples=500).excludes(3.0) is False for i in range(200))
    assert 0.88 <= covered / 200 <= 0.99


def test_interval_is_seeded_and_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    values = rng.normal(size=200)
    assert mean_interval(values, seed=3) == mean_interval(values, seed=3)
    narrow, wide = mean_interval(values), mean_interval(values[:10])
    assert narrow.high - narrow.low < wide.high - wide.low
    assert narrow.low < narrow.mean < narrow.high


def test_one_sample_has_no_interval_and_no_verdict():
    single = mean_interval([0.5])
    assert single.n == 1 and math.isnan(single.low) and not single.excludes(0.0)
    assert single.to_dict()["ci_low"] is None
    assert "no verdict" in difference_words("a", "b", single, higher_is_better=True)


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_means_hide():
    rng = np.random.default_rng(2)
    base = rng.normal(0.0, 1.0, 30)          # large spread between images
    better = base + 0.05 + rng.normal(0.0, 0.01, 30)
    assert mean_interval(better).overlaps(mean_interval(base))
    diff = paired_difference(better, base)
    assert diff.excludes(0.0) and 0.04 < diff.mean < 0.06
    words = difference_words("new", "old", diff, higher_is_better=True, over="images")
    assert words.startswith("new is better than old") and "30 images" in words
    assert difference_words("new", "old", diff, higher_is_better=False).startswith("old is better than new")
    lower = paired_difference(base, better)  # a - b < 0: with lower-is-better, a wins; its advantage reads positive
    words = difference_words("a", "b", lower, higher_is_better=False)
    assert words.startswith("a is better than b by 0.0") and f"CI {-lower.high:.3g} to {-lower.low:.3g}" in words


def test_indistinguishable_methods_are_named_so():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=20), rng.normal(size=20)
    words = difference_words("a", "b", paired_difference(a, b), higher_is_better=True)
    assert "not distinguishable on 20 images" in words


def test_nan_values_are_left_out_and_all_nan_is_an_error():
    assert mean_interval([1.0, float("nan"), 3.0]).n == 2
    with pytest.raises(InputError, match="NaN"):
        mean_interval([float("nan")] * 3)
    with pytest.raises(InputError, match="pairs"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=95)


def test_share_of_variance_finds_the_setting_that_matters():
    rows = [{"lr": lr, "act": act, "seed": s, "acc": (0.9 if lr == 0.01 else 0.3) + 0.001 * s}
            for lr in (0.01, 1.0) for act in ("relu", "tanh") for s in range(3)]
    shares = share_of_variance(pd.DataFrame(rows), ["lr", "act"], "acc")
    assert shares["lr"] > 0.99 and shares["act"] < 0.01
    with pytest.raises(InputError, match="no column"):
        share_of_variance(pd.DataFrame(rows), ["width"], "acc")


def test_interval_overlap_logic():
    assert Interval(1, 0, 2, 5).overlaps(Interval(1.5, 1.9, 3, 5))
    assert not Interval(1, 0, 1, 5).overlaps(Interval(3, 2, 4, 5))
