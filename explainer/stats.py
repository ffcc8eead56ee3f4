"""Every inference decision of every study: intervals, paired tests, "enough", Holm, variance shares.

One rule everywhere:

* an interval is Student-t by default (right coverage at n = 3); a studentized bootstrap (bootstrap-t)
  is available from ``n >= BOOTSTRAP_MIN`` where the t assumption is doubtful (skewed samples);
* a winner is named only with at least ``MIN_SAMPLES`` paired samples (images or seeds) **and** a
  Holm-adjusted p-value below ``ALPHA`` across the family of comparisons the sentence rests on;
* below the minimum a study says what it saw ("3 of 3 seeds agree") and makes no "95 %" claim.

Studies (evaluate, transfer, sweep, mechanisms, planted) call these functions; none decides on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType

import numpy as np
import pandas as pd

from explainer.errors import InputError

#: The fewest paired samples (images or seeds) on which any study names a winner.
MIN_SAMPLES = 5
#: Family-wise error rate of every verdict (after Holm's adjustment).
ALPHA = 0.05
#: The fewest samples a bootstrap interval is used with (below it, its coverage is far from nominal).
BOOTSTRAP_MIN = 10
#: Bootstrap resamples: the interval ends move by < 0.5 % of the spread between reruns at this count.
RESAMPLES = 2000
#: Interval methods: Student-t (default) and the studentized (bootstrap-t) bootstrap.
INTERVAL_METHODS = ("t", "studentized")


def enough(n: int) -> bool:
    """True when ``n`` paired samples are enough to name a winner (``n >= MIN_SAMPLES``)."""
    return int(n) >= MIN_SAMPLES


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over ``n`` samples (``low``/``high`` are NaN when n < 2).

    ``method`` says what made it: ``"t"`` (Student-t) or ``"studentized"`` (bootstrap-t).
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95
    method: str = "t"

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

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units (``factor`` > 0), such as fractions as percentage points."""
        return replace(self, mean=self.mean * factor, low=self.low * factor, high=self.high * factor)

    def negated(self) -> Interval:
        """The interval of ``-x``: for ``b - a`` from ``a - b``."""
        return replace(self, mean=-self.mean, low=-self.high, high=-self.low)

    def to_dict(self) -> dict[str, float | int | str | None]:
        """JSON-ready: ``{"mean", "ci_low", "ci_high", "n", "confidence", "interval"}`` with NaN as None."""
        return {
            "mean": _finite_or_none(self.mean),
            "ci_low": _finite_or_none(self.low),
            "ci_high": _finite_or_none(self.high),
            "n": self.n,
            "confidence": self.confidence,
            "interval": self.method,
        }


def _scipy_stats() -> ModuleType:
    """``scipy.stats``, imported on first use: it costs about a second, which ``import explainer`` should not pay."""
    from scipy import stats

    return stats


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _samples(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size and not np.isfinite(array).any():
        raise InputError(f"{name}: every value is NaN or infinite; there is nothing to summarise.")
    return array[np.isfinite(array)]


def _check(confidence: float, method: str, resamples: int) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < float(confidence) < 1.0:
        raise InputError(f"confidence must be a number between 0 and 1 (such as 0.95), got {confidence!r}.")
    if method not in INTERVAL_METHODS:
        raise InputError(f"interval method {method!r} is not known; use one of {list(INTERVAL_METHODS)} "
                         f"('t' is right at every n; 'studentized' needs ≥ {BOOTSTRAP_MIN} samples).")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise InputError(f"resamples must be an integer ≥ 100, got {resamples!r}.")


def _t_interval(array: np.ndarray, confidence: float) -> Interval:
    n = int(array.size)
    mean = float(array.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence, "t")
    half = float(_scipy_stats().t.ppf(0.5 + confidence / 2.0, n - 1)) * float(array.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence, "t")


def _studentized_interval(array: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval:
    """Bootstrap-t: the quantiles of the resampled t statistic replace Student's (skew is carried over)."""
    n = int(array.size)
    if n < BOOTSTRAP_MIN:
        raise InputError(f"a bootstrap interval needs ≥ {BOOTSTRAP_MIN} samples (got {n}): below that its "
                         f"coverage is far from the stated level; use method='t'.")
    mean, se = float(array.mean()), float(array.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        return Interval(mean, mean, mean, n, confidence, "studentized")
    rng = np.random.default_rng(seed)
    resampled = array[rng.integers(0, n, size=(resamples, n))]
    spread = resampled.std(axis=1, ddof=1) / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = (resampled.mean(axis=1) - mean) / spread
    # A resample of one repeated value has no spread: its t is ±infinite (or 0 where it equals the mean).
    side = np.sign(resampled[:, 0] - mean)
    t_star[spread == 0] = 0.0
    t_star[(spread == 0) & (side > 0)] = np.inf
    t_star[(spread == 0) & (side < 0)] = -np.inf
    tail = (1.0 - confidence) / 2.0
    low_t, high_t = np.quantile(t_star, [tail, 1.0 - tail], method="inverted_cdf")
    return Interval(mean, float(mean - high_t * se), float(mean - low_t * se), n, confidence, "studentized")


def _interval(array: np.ndarray, confidence: float, method: str, resamples: int, seed: int) -> Interval:
    return _t_interval(array, confidence) if method == "t" else _studentized_interval(array, confidence, resamples, seed)


def mean_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    method: str = "t",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` with its interval (Student-t unless ``method="studentized"``); NaN values are left out."""
    _check(confidence, method, resamples)
    return _interval(_samples(values, "values"), float(confidence), method, resamples, seed)


def _pairs(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> np.ndarray:
    first, second = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if first.shape != second.shape:
        raise InputError(f"a paired comparison needs pairs: got {first.size} and {second.size} values.")
    return _samples(first - second, "differences")


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    method: str = "t",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of ``a - b`` over pairs (same image, same seed) with its interval; pairs with a NaN are left out."""
    _check(confidence, method, resamples)
    return _interval(_pairs(a, b), float(confidence), method, resamples, seed)


def t_test(differences: Sequence[float] | np.ndarray, null: float = 0.0) -> float:
    """Two-sided p-value of a one-sample (paired) t-test that the mean of ``differences`` is ``null``.

    NaN with fewer than two values; where every difference is equal, 0 if it differs from ``null``, else 1.
    """
    array = _samples(differences, "differences") - null
    if array.size < 2:
        return math.nan
    if float(array.std()) == 0.0:
        return 0.0 if float(array.mean()) != 0.0 else 1.0
    statistic = float(array.mean()) / (float(array.std(ddof=1)) / math.sqrt(array.size))
    return float(2.0 * _scipy_stats().t.sf(abs(statistic), array.size - 1))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and do not count)."""
    raw = np.asarray(p_values, dtype=np.float64).ravel()
    adjusted = np.full(raw.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(raw))
    m = finite.size
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(raw[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * float(raw[index])))
        adjusted[index] = running
    return adjusted


def _number(value: float) -> str:
    return f"{value:.3g}" if value == 0 or 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def _level(confidence: float) -> str:
    return "95 %" if confidence == 0.95 else f"{confidence:.0%}".replace("%", " %")


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` over paired samples: the difference ``a - b``, raw and Holm-adjusted p-values.

    ``family`` is the number of comparisons the adjustment ran over (1 until :func:`adjust`).
    """

    a: str
    b: str
    difference: Interval
    p_value: float
    higher_is_better: bool
    over: str = "images"
    agree: int = 0
    p_adjusted: float = math.nan
    family: int = 1

    @property
    def n(self) -> int:
        """The number of pairs."""
        return self.difference.n

    @property
    def enough(self) -> bool:
        """True when there are enough pairs to name a winner at all (:func:`enough`)."""
        return enough(self.n)

    @property
    def decided(self) -> bool:
        """True when a winner is named: enough pairs and an adjusted p-value below ``ALPHA``."""
        p = self.p_adjusted if math.isfinite(self.p_adjusted) else self.p_value
        return self.enough and math.isfinite(p) and p < ALPHA and self.difference.mean != 0.0

    @property
    def leader(self) -> str:
        """The side the mean favours (``a`` on a tie)."""
        return self.a if (self.difference.mean >= 0) == self.higher_is_better else self.b

    @property
    def winner(self) -> str | None:
        """The better side where :attr:`decided`, else None."""
        return self.leader if self.decided else None

    def words(self, unit: str = "") -> str:
        """One sentence: who is better and by how much, that they cannot be told apart, or that there are too few."""
        over = self.over
        singular = over[:-1] if over.endswith("s") else over
        leader = self.leader
        other = self.b if leader == self.a else self.a
        advantage = self.difference if leader == self.a else self.difference.negated()
        if self.higher_is_better is False:
            advantage = advantage.negated()
        if self.n < 2:
            return f"{self.a} vs {self.b}: one {singular}: no verdict – run ≥ {MIN_SAMPLES} {over}."
        if not self.enough:
            return (f"{leader} ahead of {other} by {_number(advantage.mean)}{unit} on average; {self.agree} of "
                    f"{self.n} {over} agree (too few to name a winner: run ≥ {MIN_SAMPLES} {over}).")
        p = self.p_adjusted if math.isfinite(self.p_adjusted) else self.p_value
        adjusted = f", Holm over {self.family} comparisons" if self.family > 1 else ""
        if not self.decided:
            raw = self.difference
            span = f"{_level(raw.confidence)} CI {_number(raw.low)}{unit} to {_number(raw.high)}{unit}"
            return (f"{self.a} and {self.b} are not distinguishable on {self.n} {over} ({self.a} − {self.b} = "
                    f"{_number(raw.mean)}{unit}, {span}, {_p(p)}{adjusted}).")
        span = f"{_level(advantage.confidence)} CI {_number(advantage.low)}{unit} to {_number(advantage.high)}{unit}"
        return f"{leader} is better than {other} by {_number(advantage.mean)}{unit} ({span}, {self.n} {over}, {_p(p)}{adjusted})."

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: the names, the difference with its interval, raw and adjusted p, enough, winner."""
        return {
            "a": self.a, "b": self.b, "difference": _finite_or_none(self.difference.mean),
            "ci_low": _finite_or_none(self.difference.low), "ci_high": _finite_or_none(self.difference.high),
            "n": self.n, "interval": self.difference.method, "p_value": _finite_or_none(self.p_value),
            "p_adjusted": _finite_or_none(self.p_adjusted), "family": self.family, "enough": self.enough,
            "agree": self.agree, "winner": self.winner,
        }


def compare(
    a: str,
    a_values: Sequence[float] | np.ndarray,
    b: str,
    b_values: Sequence[float] | np.ndarray,
    *,
    higher_is_better: bool,
    over: str = "images",
    confidence: float = 0.95,
) -> Comparison:
    """Paired comparison of ``a`` and ``b`` (same images or seeds, in the same order): t-interval and t-test."""
    differences = _pairs(a_values, b_values)
    interval = _interval(differences, float(confidence), "t", RESAMPLES, 0)
    sign = 1.0 if interval.mean >= 0 else -1.0
    agree = int((np.sign(differences) == sign).sum()) if differences.size else 0
    p = t_test(differences)
    return Comparison(a, b, interval, p, bool(higher_is_better), over, agree, p, 1)


def adjust(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm's adjustment over one family of comparisons (the ones a sentence rests on together)."""
    adjusted = holm([c.p_value for c in comparisons])
    family = int(sum(math.isfinite(c.p_value) for c in comparisons))
    return [replace(c, p_adjusted=float(p), family=max(family, 1)) for c, p in zip(comparisons, adjusted)]


@dataclass(frozen=True)
class Best:
    """The best candidate, named only where it beats every other after adjustment.

    ``tied`` holds the top candidate and every one it cannot be told apart from (all of them when there
    are too few samples); ``winner`` is None unless ``tied`` has one member.
    """

    top: str
    tied: tuple[str, ...]
    comparisons: tuple[Comparison, ...] = field(default_factory=tuple)

    @property
    def winner(self) -> str | None:
        """The single best candidate, or None."""
        return self.top if self.tied == (self.top,) and self.comparisons else None

    @property
    def enough(self) -> bool:
        """True when every comparison has enough pairs."""
        return bool(self.comparisons) and all(c.enough for c in self.comparisons)

    @property
    def n(self) -> int:
        """The fewest pairs among the comparisons (0 with none)."""
        return min((c.n for c in self.comparisons), default=0)

    def words(self, unit: str = "") -> str:
        """The verdict in words."""
        if not self.comparisons:
            return f"{self.top} is the only candidate."
        if not self.enough:
            over = self.comparisons[0].over
            agree = ", ".join(f"{c.agree} of {c.n} {over} favour {c.leader} over {c.b if c.leader == c.a else c.a}"
                              for c in self.comparisons)
            return f"{self.top} has the best mean; {agree} (too few to name a winner: run ≥ {MIN_SAMPLES} {over})."
        if self.winner:
            return f"{self.top} is best: " + "; ".join(c.words(unit).rstrip(".") for c in self.comparisons) + "."
        others = [name for name in self.tied if name != self.top]
        return (f"No single best: {self.top} has the best mean, but {', '.join(others)} cannot be told apart from it "
                f"after Holm's adjustment over {self.comparisons[0].family} comparisons.")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: top, winner, tied set, enough and each comparison."""
        return {"top": self.top, "winner": self.winner, "tied": list(self.tied), "enough": self.enough,
                "n": self.n, "comparisons": [c.to_dict() for c in self.comparisons]}


def against_top(
    candidates: Mapping[str, Sequence[float] | np.ndarray], *, higher_is_better: bool, over: str = "images"
) -> tuple[str, list[Comparison]]:
    """The candidate with the best mean and its (unadjusted) paired comparison with every other one."""
    if not candidates:
        raise InputError("no candidates to compare.")
    means = {name: float(np.nanmean(np.asarray(v, dtype=np.float64))) if np.isfinite(np.asarray(v, float)).any()
             else math.nan for name, v in candidates.items()}
    ranked = sorted((name for name in means if math.isfinite(means[name])),
                    key=lambda name: means[name], reverse=higher_is_better)
    if not ranked:
        raise InputError("every candidate's values are NaN; there is nothing to compare.")
    top = ranked[0]
    return top, [compare(top, candidates[top], other, candidates[other], higher_is_better=higher_is_better, over=over)
                 for other in ranked[1:]]


def decide_best(top: str, comparisons: Sequence[Comparison]) -> Best:
    """The :class:`Best` from the top candidate and its *already adjusted* comparisons."""
    tied = (top, *[(c.b if c.a == top else c.a) for c in comparisons if not c.decided])
    return Best(top, tuple(tied), tuple(comparisons))


def best_of(
    candidates: Mapping[str, Sequence[float] | np.ndarray], *, higher_is_better: bool, over: str = "images"
) -> Best:
    """The best of ``candidates`` (name → paired samples): top vs every other, Holm over those comparisons."""
    top, comparisons = against_top(candidates, higher_is_better=higher_is_better, over=over)
    return decide_best(top, adjust(comparisons))


def difference_words(
    name_a: str, name_b: str, interval: Interval, *, higher_is_better: bool, unit: str = "", over: str = "images"
) -> str:
    """Words for a paired difference ``a - b`` given only its t-interval (the p-value is recovered from it)."""
    p = math.nan
    if interval.defined and interval.n >= 2:
        half = (interval.high - interval.low) / 2.0
        critical = float(_scipy_stats().t.ppf(0.5 + interval.confidence / 2.0, interval.n - 1))
        se = half / critical if critical > 0 else 0.0
        p = (float(2 * _scipy_stats().t.sf(abs(interval.mean) / se, interval.n - 1)) if se > 0
             else (0.0 if interval.mean != 0 else 1.0))
    comparison = Comparison(name_a, name_b, interval, p, higher_is_better, over, interval.n if interval.n else 0, p, 1)
    return comparison.words(unit)


@dataclass(frozen=True)
class VarianceShares:
    """How much of a value's spread each factor (Type-II sums of squares), their interaction and the rest explain.

    ``shares`` sum to 1 with ``residual`` (each in [0, 1]); ``omega_squared`` corrects each for noise (≥ 0);
    ``p_adjusted`` are F-test p-values, Holm-adjusted across the terms (NaN without replicates).
    """

    shares: dict[str, float]
    residual: float
    omega_squared: dict[str, float]
    p_values: dict[str, float]
    p_adjusted: dict[str, float]
    balanced: bool
    n: int

    def significant(self) -> list[str]:
        """Terms whose adjusted p-value is below ``ALPHA``."""
        return [term for term, p in self.p_adjusted.items() if math.isfinite(p) and p < ALPHA]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {"shares": self.shares, "residual": self.residual, "omega_squared": self.omega_squared,
                "p_values": {k: _finite_or_none(v) for k, v in self.p_values.items()},
                "p_adjusted": {k: _finite_or_none(v) for k, v in self.p_adjusted.items()},
                "balanced": self.balanced, "n": self.n}


INTERACTION = "interaction"


def _design(data: pd.DataFrame, factors: Sequence[str]) -> np.ndarray:
    columns = [np.ones(len(data))]
    for factor in factors:
        dummies = pd.get_dummies(data[factor].astype(str), drop_first=True, dtype=float)
        columns.extend(dummies.to_numpy().T)
    return np.column_stack(columns)


def _residual(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    rank = int(np.linalg.matrix_rank(design))
    return float(((y - design @ coefficients) ** 2).sum()), rank


def variance_shares(frame: pd.DataFrame, factors: Sequence[str], value: str) -> VarianceShares:
    """Type-II ANOVA of ``value`` on ``factors`` (main effects, then all their interactions as one term).

    Right on unbalanced grids (a partial sweep, dropped NaN rows): shares stay in [0, 1] and sum to 1 with
    the residual; an interaction is reported only as what the cell means add beyond the main effects.
    """
    missing = [name for name in [*factors, value] if name not in frame.columns]
    if missing:
        raise InputError(f"variance shares: no column {missing}; columns are {list(frame.columns)}.")
    data = frame[[*factors, value]].dropna(subset=[value]).reset_index(drop=True)
    y = data[value].astype(float).to_numpy()
    factors = [f for f in factors if data[f].nunique(dropna=False) > 1]
    terms = [*factors, INTERACTION] if len(factors) > 1 else list(factors)
    total = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
    empty = {term: 0.0 for term in terms}
    nan = {term: math.nan for term in terms}
    cells = data.groupby(list(factors), dropna=False).size() if factors else pd.Series([len(data)])
    balanced = bool(cells.nunique() == 1)
    if total == 0.0 or y.size < 2 or not factors:
        return VarianceShares(empty, 1.0 if total else 0.0, empty, nan, nan, balanced, int(y.size))
    mains, main_rank = _residual(_design(data, factors), y)
    sums: dict[str, float] = {}
    dfs: dict[str, int] = {}
    for factor in factors:
        without, rank = _residual(_design(data, [f for f in factors if f != factor]), y)
        sums[factor], dfs[factor] = max(without - mains, 0.0), main_rank - rank
    cell_index = data[list(factors)].astype(str).agg("|".join, axis=1)
    cell_design = pd.get_dummies(cell_index, dtype=float).to_numpy()
    residual, cell_rank = _residual(cell_design, y)
    if len(factors) > 1:
        sums[INTERACTION], dfs[INTERACTION] = max(mains - residual, 0.0), cell_rank - main_rank
    df_residual = int(y.size - cell_rank)
    mean_square_error = residual / df_residual if df_residual > 0 else math.nan
    whole = sum(sums.values()) + residual
    shares = {term: sums[term] / whole for term in terms}
    p_values: dict[str, float] = {}
    omega: dict[str, float] = {}
    for term in terms:
        if df_residual > 0 and dfs[term] > 0 and mean_square_error > 0:
            f_value = (sums[term] / dfs[term]) / mean_square_error
            p_values[term] = float(_scipy_stats().f.sf(f_value, dfs[term], df_residual))
            omega[term] = max(0.0, (sums[term] - dfs[term] * mean_square_error) / (whole + mean_square_error))
        else:
            p_values[term] = 0.0 if df_residual > 0 and dfs[term] > 0 and sums[term] > 0 else math.nan
            omega[term] = shares[term] if df_residual > 0 else math.nan
    adjusted = {t: float(p) for t, p in zip(terms, holm([p_values[t] for t in terms]))}
    return VarianceShares(shares, residual / whole, omega, p_values, adjusted, balanced, int(y.size))


def share_of_variance(frame: pd.DataFrame, factors: Sequence[str], value: str) -> dict[str, float]:
    """Each factor's share of the spread of ``value`` (Type-II sums of squares; see :func:`variance_shares`)."""
    return variance_shares(frame, factors, value).shares


def _crossed(matrix: np.ndarray) -> tuple[float, float, float, int]:
    """Mean, variance of the mean and Satterthwaite df of a seeds × images matrix (crossed random effects).

    Var(mean) is estimated by var(seed means)/n + var(image means)/m, which overstates the true value by
    only the residual's σ²/(n·m): conservative.
    """
    n, m = matrix.shape
    mean = float(matrix.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    v_seed = float(matrix.mean(axis=1).var(ddof=1)) / n
    v_image = float(matrix.mean(axis=0).var(ddof=1)) / m if m > 1 else 0.0
    variance = v_seed + v_image
    parts = v_seed**2 / (n - 1) + (v_image**2 / (m - 1) if m > 1 else 0.0)
    return mean, variance, (variance**2 / parts if parts > 0 else float(n - 1)), n


def _crossed_matrix(values: Sequence[Sequence[float]] | np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2 or not matrix.size or not np.isfinite(matrix).all():
        raise InputError(f"{name}: a crossed interval needs a finite seeds × images matrix, got shape {matrix.shape}.")
    return matrix


def crossed_interval(values: Sequence[Sequence[float]] | np.ndarray, *, confidence: float = 0.95) -> Interval:
    """The mean of a seeds × test-images matrix (e.g. 0/1 correctness) with a t-interval that counts both the
    seeds' and the test images' sampling (method ``"t-crossed"``; ``n`` is the number of seeds)."""
    _check(confidence, "t", RESAMPLES)
    mean, variance, df, n = _crossed(_crossed_matrix(values, "values"))
    if not math.isfinite(variance):
        return Interval(mean, math.nan, math.nan, n, float(confidence), "t-crossed")
    half = float(_scipy_stats().t.ppf(0.5 + float(confidence) / 2.0, df)) * math.sqrt(variance)
    return Interval(mean, mean - half, mean + half, n, float(confidence), "t-crossed")


def crossed_compare(
    a: str,
    a_values: Sequence[Sequence[float]] | np.ndarray,
    b: str,
    b_values: Sequence[Sequence[float]] | np.ndarray,
    *,
    higher_is_better: bool,
    over: str = "seeds",
    confidence: float = 0.95,
) -> Comparison:
    """Paired comparison of two seeds × test-images matrices (same seeds and images in the same order):
    the difference's t-interval and t-test count the sampling of seeds *and* of test images."""
    first, second = _crossed_matrix(a_values, a), _crossed_matrix(b_values, b)
    if first.shape != second.shape:
        raise InputError(f"a crossed comparison needs matching matrices: got {first.shape} and {second.shape}.")
    differences = first - second
    interval = crossed_interval(differences, confidence=confidence)
    mean, variance, df, n = _crossed(differences)
    if not math.isfinite(variance):
        p = math.nan
    elif variance == 0.0:
        p = 0.0 if mean != 0.0 else 1.0
    else:
        p = float(2.0 * _scipy_stats().t.sf(abs(mean) / math.sqrt(variance), df))
    per_seed = differences.mean(axis=1)
    agree = int((np.sign(per_seed) == (1.0 if mean >= 0 else -1.0)).sum())
    return Comparison(a, b, interval, p, bool(higher_is_better), over, agree, p, 1)
