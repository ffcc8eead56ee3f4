"""Statistics for every study: bootstrap intervals, paired differences, variance shares, verdicts in words.

Verdicts are generated from intervals, never from means: a difference is named only where its
interval excludes zero, and fewer than two samples give "no verdict".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from explainer.errors import InputError

#: Bootstrap resamples: the interval ends move by < 0.5 % of the spread between reruns at this count.
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over ``n`` samples (``low``/``high`` are NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def defined(self) -> bool:
        """True when the interval has ends (at least two finite samples)."""
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (False when the interval is undefined)."""
        return self.defined and (value < self.low or value > self.high)

    def overlaps(self, other: Interval) -> bool:
        """True when the two intervals share a point (True when either is undefined: nothing is shown apart)."""
        if not (self.defined and other.defined):
            return True
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: ``{"mean", "ci_low", "ci_high", "n", "confidence"}`` with NaN as None."""
        return {
            "mean": _finite_or_none(self.mean),
            "ci_low": _finite_or_none(self.low),
            "ci_high": _finite_or_none(self.high),
            "n": self.n,
            "confidence": self.confidence,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _samples(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size and not np.isfinite(array).any():
        raise InputError(f"{name}: every value is NaN or infinite; there is nothing to summarise.")
    return array[np.isfinite(array)]


def _check(confidence: float, resamples: int) -> None:
    if isinstance(confidence, bool) or not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be a number between 0 and 1 (such as 0.95), got {confidence!r}.")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise InputError(f"resamples must be an integer ≥ 100, got {resamples!r}.")


def _bootstrap(array: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval:
    mean = float(array.mean()) if array.size else math.nan
    if array.size < 2:
        return Interval(mean, math.nan, math.nan, int(array.size), confidence)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(resamples, array.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(mean, float(low), float(high), int(array.size), confidence)


def mean_interval(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The mean of ``values`` with a percentile-bootstrap interval; NaN values are left out (n counts the rest)."""
    _check(confidence, resamples)
    return _bootstrap(_samples(values, "values"), confidence, resamples, seed)


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of ``a - b`` over pairs (same image, same seed) with a paired-bootstrap interval.

    Pairs where either side is NaN are left out.
    """
    _check(confidence, resamples)
    first, second = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if first.shape != second.shape:
        raise InputError(f"paired_difference needs pairs: got {first.size} and {second.size} values.")
    return _bootstrap(_samples(first - second, "differences"), confidence, resamples, seed)


def _number(value: float) -> str:
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def difference_words(
    name_a: str, name_b: str, interval: Interval, *, higher_is_better: bool, unit: str = "", over: str = "images"
) -> str:
    """One sentence on ``a - b``: who is better and by how much, or that they cannot be told apart."""
    singular = over[:-1] if over.endswith("s") else over
    if interval.n < 2:
        return f"{name_a} vs {name_b}: one {singular}: no verdict – add {over}."
    level = "95 %" if interval.confidence == 0.95 else f"{interval.confidence:.0%}"

    def span(low: float, high: float) -> str:
        return f"{level} CI {_number(low)}{unit} to {_number(high)}{unit}"

    if not interval.excludes(0.0):
        return (
            f"{name_a} and {name_b} are not distinguishable on {interval.n} {over} "
            f"(difference {_number(interval.mean)}{unit}, {span(interval.low, interval.high)})."
        )
    a_better = (interval.mean > 0) == higher_is_better
    winner, loser = (name_a, name_b) if a_better else (name_b, name_a)
    # The winner's advantage and its interval, both positive: |a - b| with the ends flipped where a - b < 0.
    low, high = (interval.low, interval.high) if interval.mean > 0 else (-interval.high, -interval.low)
    return (
        f"{winner} is better than {loser} by {_number(abs(interval.mean))}{unit} "
        f"({span(low, high)}, {interval.n} {over})."
    )


def share_of_variance(frame: pd.DataFrame, factors: Sequence[str], value: str) -> dict[str, float]:
    """Eta squared of each factor's main effect on ``value``: the share of the total variance it explains.

    Rows with a NaN ``value`` are left out. Shares are in [0, 1]; what the factors leave is seed noise
    and interactions.
    """
    missing = [name for name in [*factors, value] if name not in frame.columns]
    if missing:
        raise InputError(f"share_of_variance: no column {missing}; columns are {list(frame.columns)}.")
    data = frame[[*factors, value]].dropna(subset=[value])
    values = data[value].astype(float)
    total = float(((values - values.mean()) ** 2).sum())
    if total == 0.0 or len(data) < 2:
        return {factor: 0.0 for factor in factors}
    shares = {}
    for factor in factors:
        groups = data.groupby(factor, dropna=False)[value]
        between = float((groups.count() * (groups.mean() - values.mean()) ** 2).sum())
        shares[factor] = between / total
    return shares
