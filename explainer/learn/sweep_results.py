"""What a sweep found and will cost: `SweepResults` (table, intervals over seeds, best, verdict) and `SweepEstimate`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from explainer import stats
from explainer.errors import InputError
from explainer.jsonable import json_ready
from explainer.learn.sweep_grid import Task, _task_payload
from explainer.run.long_call import duration

#: Columns of the tidy table besides the settings.
RUN_COLUMNS = ("seed", "test_accuracy", "final_loss", "seconds", "flops", "status")
#: Fields of a run's row besides its settings and seed (what one run measured).
RESULT_FIELDS = (
    "test_accuracy", "final_loss", "seconds", "flops", "status", "test_loss", "epochs_run", "parameters",
    "flops_per_sample", "wall_seconds", "message", "curves", "grad_norm",
)


@dataclass(frozen=True)
class SweepEstimate:
    """How long a grid will take, from one measured run (``seconds_per_run``, wall time of one run)."""

    runs: int
    configurations: int
    seeds: int
    remaining: int
    seconds_per_run: float
    workers: int = 1
    #: Mean epochs of the runs over the first run's epochs, when the grid varies epochs (time ∝ epochs).
    epochs_scale: float = 1.0

    @property
    def seconds(self) -> float:
        """Estimated seconds for the runs still to do (divided over ``workers`` in parallel)."""
        return self.remaining * self.seconds_per_run * self.epochs_scale / max(1, self.workers)

    def words(self) -> str:
        """The estimate in one sentence."""
        parallel = f" over {self.workers} workers" if self.workers > 1 else ""
        parallel += f" (scaled by the epochs, ×{self.epochs_scale:.2g})" if self.epochs_scale != 1.0 else ""
        return (
            f"{self.runs} runs ({self.configurations} configurations × {self.seeds} seed{'s' * (self.seeds != 1)}); "
            f"one run took {self.seconds_per_run:.2f} s, so about {duration(self.seconds)}{parallel} for the "
            f"{self.remaining} still to do."
        )

    def to_dict(self) -> dict:
        """JSON-ready numbers."""
        return {**asdict(self), "seconds": self.seconds, "words": self.words()}


def _label(settings: Mapping[str, Any]) -> str:
    return "[" + ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}" for key, value in settings.items()) + "]"


def _pct(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


class SweepResults:
    """The runs of a sweep and what they show.

    ``runs`` holds one dict per run (settings, seed, numbers, curves, per-layer gradient norms);
    :meth:`table` is the tidy table, :meth:`summary` one row per configuration with a 95 % interval
    over seeds, :attr:`best` the best configuration by mean test accuracy and
    :attr:`indistinguishable` every other configuration whose paired (by seed) difference from it
    has an interval that includes zero.
    """

    def __init__(self, task: Task, grid: Mapping[str, Sequence[Any]], seeds: Sequence[int], runs: Sequence[dict],
                 estimate: SweepEstimate | None = None, path: str | Path | None = None) -> None:
        self.task = task
        self.grid = {name: list(values) for name, values in grid.items()}
        self.settings = list(self.grid)
        self.seeds = list(seeds)
        self.runs = [dict(run) for run in runs]
        self.estimate = estimate
        self.path = Path(path) if path is not None else None
        self._summary: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return (f"SweepResults({len(self.runs)} runs, {len(self.configurations())} configurations × "
                f"{len(self.seeds)} seeds, best {_label(self.best) if self.runs else None})")

    def configurations(self) -> list[dict]:
        """The distinct settings, in grid order."""
        seen: dict[tuple, dict] = {}
        for run in self.runs:
            settings = {name: run[name] for name in self.settings}
            seen.setdefault(tuple(settings.values()), settings)
        return list(seen.values())

    def table(self) -> pd.DataFrame:
        """One row per run: the settings, seed, test accuracy, final (training) loss, seconds, FLOPs, status."""
        columns = [*self.settings, *RUN_COLUMNS, "epochs_run", "parameters", "message"]
        frame = pd.DataFrame([{key: run.get(key) for key in columns} for run in self.runs], columns=columns)
        for key in ("test_accuracy", "final_loss", "seconds", "flops"):
            frame[key] = pd.to_numeric(frame[key], errors="coerce")
        return frame

    def run(self, seed: int | None = None, **settings: Any) -> dict:
        """The run with these settings and seed (default: the first seed), curves included."""
        seed = self.seeds[0] if seed is None else seed
        for run in self.runs:
            if run["seed"] == seed and all(run.get(key) == value for key, value in settings.items()):
                return run
        raise InputError(f"No run with {_label(settings)}, seed {seed}; the grid has {self.grid} × seeds {self.seeds}.")

    def _accuracies(self, settings: Mapping[str, Any]) -> dict[int, float]:
        return {run["seed"]: _number(run.get("test_accuracy")) for run in self.runs if all(run[key] == value for key, value in settings.items())}

    def summary(self) -> pd.DataFrame:
        """One row per configuration: settings, mean test accuracy with its 95 % interval over seeds
        (``ci_low``/``ci_high``, NaN with one seed), ``n`` runs, ``diverged`` runs, mean seconds."""
        if self._summary is None:
            rows = []
            for settings in self.configurations():
                runs = [run for run in self.runs if all(run[key] == value for key, value in settings.items())]
                interval = stats.mean_interval([_number(run["test_accuracy"]) for run in runs])
                rows.append({
                    **settings, "mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                    "n": interval.n, "diverged": sum(run["status"] == "diverged" for run in runs),
                    "seconds": sum(_number(run["seconds"]) for run in runs) / len(runs),
                })
            self._summary = pd.DataFrame(rows, columns=[*self.settings, "mean", "ci_low", "ci_high", "n", "diverged", "seconds"])
        return self._summary.copy()  # a caller may change its copy; verdict() reads the cached one

    @property
    def best(self) -> dict:
        """The configuration with the highest mean test accuracy (ties: the faster one)."""
        summary = self.summary()
        if summary.empty:
            raise InputError("This sweep has no runs yet.")
        ranked = summary.assign(_mean=summary["mean"].fillna(-1.0)).sort_values(["_mean", "seconds"], ascending=[False, True], kind="stable")
        return {name: _plain(ranked.iloc[0][name]) for name in self.settings}

    def difference(self, settings: Mapping[str, Any], other: Mapping[str, Any]) -> stats.Interval:
        """Mean paired difference of test accuracy (``settings`` − ``other``) over the seeds both ran."""
        a, b = self._accuracies(settings), self._accuracies(other)
        common = [seed for seed in a if seed in b]
        return stats.paired_difference([a[s] for s in common], [b[s] for s in common])

    def best_of(self) -> stats.Best:
        """:attr:`best` against every other configuration, paired by seed (accuracy points), Holm over them
        all (:func:`explainer.stats.decide_best`): a single winner only where it beats every other one."""
        best = self.best
        top = self._accuracies(best)
        comparisons = []
        for settings in self.configurations():
            if settings != best:
                other = self._accuracies(settings)
                common = [seed for seed in self.seeds if seed in top and seed in other]
                comparisons.append(stats.compare(
                    _label(best), [100 * top[s] for s in common], _label(settings), [100 * other[s] for s in common],
                    higher_is_better=True, over="seeds"))
        return stats.decide_best(_label(best), stats.adjust(comparisons) if comparisons else [])

    @property
    def indistinguishable(self) -> list[dict]:
        """Every other configuration :attr:`best` does not beat after Holm's adjustment (all of them with fewer
        than ``stats.MIN_SAMPLES`` seeds)."""
        best = self.best
        tied = set(self.best_of().tied)
        return [settings for settings in self.configurations() if settings != best and _label(settings) in tied]

    def variance_shares(self) -> stats.VarianceShares | None:
        """Type-II ANOVA of test accuracy on the varied settings (:func:`explainer.stats.variance_shares`):
        each setting's share, their interaction, the rest (seed noise), F-test p-values (Holm) and whether
        the grid is balanced (every configuration with the same number of finished runs). None when nothing varies."""
        frame = self.table()
        varied = [name for name in self.settings if frame[name].nunique() > 1]
        if not varied:
            return None
        return stats.variance_shares(frame.astype({name: str for name in varied}), varied, "test_accuracy")

    def share_of_variance(self) -> dict[str, float]:
        """The shares of :meth:`variance_shares` as one dict: each setting, ``"interactions"`` and ``"seeds"``."""
        shares = self.variance_shares()
        if shares is None:
            return {}
        result = {name: value for name, value in shares.shares.items() if name != stats.INTERACTION}
        result["interactions"] = shares.shares.get(stats.INTERACTION, 0.0)
        result["seeds"] = shares.residual
        return result

    def verdict(self) -> str:
        """What the grid shows, in plain words; no winner is named within seed noise."""
        return _verdict(self)

    def to_dict(self, curves: bool = False) -> dict:
        """JSON: ``runs``, ``summary``, ``best``, ``indistinguishable``, ``verdict`` (+ the grid, share of
        variance and estimate). ``curves=True`` keeps each run's per-epoch curves and gradient norms."""
        drop = () if curves else ("curves", "grad_norm")
        return json_ready({
            "runs": [{key: value for key, value in run.items() if key not in drop} for run in self.runs],
            "summary": self.summary().to_dict(orient="records"),
            "best": self.best,
            "indistinguishable": self.indistinguishable,
            "verdict": self.verdict(),
            "grid": self.grid,
            "seeds": self.seeds,
            "task": _task_payload(self.task),
            "share_of_variance": self.share_of_variance(),
            "variance": shares.to_dict() if (shares := self.variance_shares()) else None,
            "best_of": self.best_of().to_dict() if self.runs else None,
            "enough": stats.enough(len(self.seeds)),
            "estimate": self.estimate.to_dict() if self.estimate else None,
        })


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _verdict(results: SweepResults) -> str:
    summary = results.summary()
    best = results.best
    row = summary[(summary[results.settings] == pd.Series(best)).all(axis=1)].iloc[0]
    n = len(results.seeds)
    parts = []
    decision = results.best_of()
    where = (f"{_pct(row['mean'])} (95 % CI {_pct(row['ci_low'])} to {_pct(row['ci_high'])}, {n} seeds)"
             if n >= 2 else f"{_pct(row['mean'])} (1 seed)")
    if len(summary) == 1:
        parts.append(f"One configuration: {_label(best)} at {where}.")
    elif n < 2:
        parts.append(f"One seed: no verdict – add seeds (run ≥ {stats.MIN_SAMPLES}). "
                     f"The highest mean accuracy was {_label(best)} at {_pct(row['mean'])}.")
    elif not decision.enough:
        runner = min(decision.comparisons, key=lambda c: abs(c.difference.mean))
        parts.append(f"No winner named: {_label(best)} had the highest mean, {where}; against the runner-up "
                     f"{runner.b}, {runner.agree} of {runner.n} seeds agree (too few to name a winner: run ≥ "
                     f"{stats.MIN_SAMPLES} seeds).")
    elif decision.winner:
        closest = max(decision.comparisons, key=lambda c: c.p_adjusted)
        parts.append(f"Best: {_label(best)} at {where}, ahead of every other configuration after Holm's adjustment "
                     f"over {closest.family} comparisons. Closest: {closest.words(' points')}")
    else:
        others = results.indistinguishable
        names = "; ".join(_label(s) for s in others[:5]) + (f"; and {len(others) - 5} more" if len(others) > 5 else "")
        parts.append(
            f"No single winner: {_label(best)} had the highest mean, {where}, but {len(others)} other "
            f"configuration{'s' if len(others) > 1 else ''} cannot be told apart from it after Holm's adjustment "
            f"(paired by seed): {names}."
        )
    parts.extend(_diverged_words(summary, results.settings))
    shares = results.variance_shares()
    if shares is not None:
        mains = sorted(((k, v) for k, v in shares.shares.items() if k != stats.INTERACTION), key=lambda item: -item[1])
        significant = set(shares.significant())

        def mark(name: str, label: str, share: float) -> str:
            return f"{label} {share:.0%}" + ("" if name in significant or not n > 1 else " (not significant)")

        pieces = [mark(name, name, share) for name, share in mains]
        if stats.INTERACTION in shares.shares:
            pieces.append(mark(stats.INTERACTION, "their interaction", shares.shares[stats.INTERACTION]))
        if n > 1:
            pieces.append(f"seed noise {shares.residual:.0%}")
        listed = ", ".join(pieces[:-1]) + f" and {pieces[-1]}" if len(pieces) > 1 else pieces[0]
        balance = "" if shares.balanced else (" The grid is unbalanced (configurations have different numbers of "
                                              "finished runs): Type-II sums of squares, shares are per term.")
        parts.append(f"Share of the spread in test accuracy (Type-II ANOVA, F-tests Holm-adjusted): {listed}.{balance}")
    return " ".join(parts)


def _diverged_words(summary: pd.DataFrame, settings: list[str]) -> list[str]:
    diverged = summary[summary["diverged"] > 0]
    if diverged.empty:
        return []
    listed = "; ".join(f"{_label({k: _plain(r[k]) for k in settings})} ({int(r['diverged'])} of {int(r['n'])})"
                       for _, r in diverged.head(6).iterrows())
    more = f"; and {len(diverged) - 6} more" if len(diverged) > 6 else ""
    return [f"Diverged (kept in the table): {listed}{more}."]
