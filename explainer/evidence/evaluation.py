"""The result of :func:`explainer.evaluate`: per-image rows, intervals, paired comparisons, flags and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from explainer.errors import InputError
from explainer.evidence import metrics as M
from explainer.evidence.controls import is_control
from explainer.jsonable import json_ready
from explainer.stats import (
    MIN_SAMPLES,
    Best,
    Comparison,
    Interval,
    adjust,
    against_top,
    compare,
    decide_best,
    enough,
    mean_interval,
)

#: The name the randomization null takes in comparisons.
NULL = "null:two randomized copies"


@dataclass
class Evaluation:
    """Per-image rows and the statistics over them; :meth:`to_dict` is the CLI's JSON."""

    rows: list[dict[str, Any]]
    methods: list[str]
    metrics: list[str]
    config: dict[str, Any]
    seconds: float = math.nan
    estimate_seconds: float | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def controls(self) -> list[str]:
        return [m for m in self.methods if is_control(m)]

    @property
    def compared(self) -> list[str]:
        """The methods that are not controls."""
        return [m for m in self.methods if not is_control(m)]

    @property
    def n(self) -> int:
        return len(self.rows)

    def scores(self, method: str, metric: str) -> np.ndarray:
        """Per-image values of ``metric`` for ``method`` (NaN where it does not apply)."""
        values = [row["scores"].get(method, {}).get(metric) for row in self.rows]
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

    def curves(self, method: str, curve: str) -> np.ndarray:
        """``(N, S + 1)`` per-image curve ``curve`` of ``method``."""
        return np.array([row["curves"][method][curve] for row in self.rows], dtype=np.float64)

    @property
    def fractions(self) -> np.ndarray:
        steps = int(self.config["steps"])
        return np.arange(steps + 1) / steps

    def available_metrics(self) -> list[str]:
        """The evaluated metrics that have a value for at least one method (mask metrics need masks)."""
        return self._metrics_present()

    def _metrics_present(self) -> list[str]:
        return [k for k in self.metrics if any(np.isfinite(self.scores(m, k)).any() for m in self.methods)]

    def interval(self, method: str, metric: str) -> Interval:
        """Mean of ``metric`` for ``method`` over images with its Student-t 95 % interval (``Interval.method``)."""
        key = f"i:{method}:{metric}"
        if key not in self._cache:
            values = self.scores(method, metric)
            self._cache[key] = (mean_interval(values) if np.isfinite(values).any()
                                else Interval(math.nan, math.nan, math.nan, 0))
        return self._cache[key]

    def null_scores(self, method: str) -> np.ndarray:
        """Per-image randomization null of ``method``: its maps on two independently randomized copies."""
        values = [row.get("randomization_null", {}).get(method) for row in self.rows]
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)

    def comparison(self, a: str, b: str, metric: str) -> Comparison:
        """Paired comparison ``a - b`` of ``metric`` over the images where both have a value (unadjusted).

        ``b`` may be :data:`NULL`: ``a``'s randomization null. Cached: a verdict asks for each pair once.
        """
        key = f"c:{a}:{b}:{metric}"
        if key not in self._cache:
            first = self.scores(a, metric)
            second = self.null_scores(a) if b == NULL else self.scores(b, metric)
            both = np.isfinite(first) & np.isfinite(second)
            self._cache[key] = compare(a, first[both], b, second[both],
                                       higher_is_better=M.METRICS[metric].higher_is_better)
        return self._cache[key]

    def difference(self, a: str, b: str, metric: str) -> Interval:
        """Paired difference ``a - b`` of ``metric`` over images, with its Student-t 95 % interval."""
        return self.comparison(a, b, metric).difference

    @property
    def enough(self) -> bool:
        """True when there are enough images to name a winner (:func:`explainer.stats.enough`)."""
        return enough(self.n)

    def summary(self) -> pd.DataFrame:
        """One row per method (controls included) × metric: mean, ci_low, ci_high, n, interval method, better."""
        return pd.DataFrame(self._summary_rows(),
                            columns=["method", "metric", "mean", "ci_low", "ci_high", "n", "interval", "better"])

    def _summary_rows(self) -> list[dict[str, Any]]:
        out = []
        for metric in self._metrics_present():
            for method in self.methods:
                interval = self.interval(method, metric)
                if interval.n == 0:
                    continue
                d = interval.to_dict()
                out.append({"method": method, "metric": metric, "mean": d["mean"], "ci_low": d["ci_low"],
                            "ci_high": d["ci_high"], "n": interval.n, "interval": interval.method,
                            "better": M.METRICS[metric].better})
        return out

    def _family(self) -> dict[tuple[str, str, str, str], Comparison]:
        """The one family the verdict rests on, Holm-adjusted together.

        Members, keyed ``(role, metric, a, b)``: per metric the top method against every other method
        (``"best"``), and per faithfulness metric every method against every control – or, for
        randomization, against its null (``"control"``).
        """
        if "family" not in self._cache:
            keys: list[tuple[str, str, str, str]] = []
            for metric in self._metrics_present():
                ranked = [m for m in self.compared if self.interval(m, metric).n]
                if len(ranked) > 1:
                    spec = M.METRICS[metric]
                    top, _ = against_top({m: self.scores(m, metric) for m in ranked},
                                         higher_is_better=spec.higher_is_better)
                    keys += [("best", metric, top, other) for other in ranked if other != top
                             and self.comparison(top, other, metric).n]
                if not M.METRICS[metric].flaggable:
                    continue
                references = self.controls if M.METRICS[metric].controls_apply else [NULL]
                for method in self.compared:
                    keys += [("control", metric, method, ref) for ref in references
                             if self.comparison(method, ref, metric).n]
            adjusted = adjust([self.comparison(a, b, metric) for _, metric, a, b in keys])
            self._cache["family"] = dict(zip(keys, adjusted))
        return self._cache["family"]

    def best(self, metric: str) -> Best | None:
        """The best method on ``metric``: it must beat every other after Holm over the verdict's family."""
        members = [(key, c) for key, c in self._family().items() if key[0] == "best" and key[1] == metric]
        if not members:
            return None
        return decide_best(members[0][0][2], [c for _, c in members])

    def _pair(self, a: str, b: str, metric: str, comparison: Comparison | None = None) -> dict[str, Any]:
        chosen = comparison or self.comparison(a, b, metric)
        return {"metric": metric, **chosen.to_dict(), "better": M.METRICS[metric].better, "words": chosen.words()}

    def comparisons(self) -> list[dict[str, Any]]:
        """Every pair of methods (not controls) on every metric, Holm-adjusted over all of these pairs.

        Raw (``p_value``) and adjusted (``p_adjusted``) p-values; ``winner`` only with ≥ MIN_SAMPLES images.
        """
        if "pairs" not in self._cache:
            keys = []
            methods = self.compared
            for metric in self._metrics_present():
                for i, a in enumerate(methods):
                    keys += [(metric, a, b) for b in methods[i + 1:] if self.comparison(a, b, metric).n]
            adjusted = adjust([self.comparison(a, b, metric) for metric, a, b in keys])
            self._cache["pairs"] = [self._pair(a, b, metric, c) for (metric, a, b), c in zip(keys, adjusted)]
        return self._cache["pairs"]

    def controls_table(self) -> list[dict[str, Any]]:
        """Every method against every control (randomization: against its null), adjusted in the verdict's family."""
        return [{**self._pair(a, b, metric, c), "beats": c.winner == a}
                for (role, metric, a, b), c in self._family().items() if role == "control"]

    def flags(self) -> list[dict[str, Any]]:
        """Where, with enough images, a method is not shown to beat a control (random, edges, brightness, centre)
        after Holm's adjustment – ``"loses": True`` where the control is shown better – and where its
        randomization similarity is shown above its null (the map survives re-initialisation)."""
        if not self.enough:
            return []
        out = []
        for (role, metric, method, reference), c in self._family().items():
            if role != "control":
                continue
            if reference == NULL:
                if c.winner != reference:
                    continue
                words = (f"{method} fails randomization on {metric}: its similarity to the randomized model's map "
                         f"is above the null (two randomized copies): {c.words()}")
            elif c.winner == method:
                continue
            else:
                verb = "loses to" if c.winner == reference else "does not beat"
                words = f"{method} {verb} {reference} on {metric}: {c.words()}"
            out.append({"method": method, "metric": metric, "control": reference, "loses": c.winner == reference,
                        **{k: v for k, v in c.to_dict().items() if k not in ("a", "b")},
                        "better": M.METRICS[metric].better, "words": words})
        return out

    def flagged(self, method: str, metric: str) -> bool:
        """True when ``method`` is flagged on ``metric`` (see :meth:`flags`)."""
        return any(f["method"] == method and f["metric"] == metric for f in self.flags())

    def verdict(self) -> str:
        """Plain words: per metric the best method where it beats every other after Holm's adjustment, what
        cannot be told apart, the controls, and – below MIN_SAMPLES images – why no winner is named."""
        if not self.rows:
            return "No images were evaluated."
        family = self._family()
        lines = [f"{self.n} image(s), {len(self.compared)} method(s), {len(self.controls)} control(s); Student-t "
                 f"95 % intervals over images; paired t-tests, Holm-adjusted over the {len(family)} comparisons "
                 "this verdict rests on."]
        if not self.enough:
            lines.append(f"Too few images to name a winner or clear a control: {self.n} of the {MIN_SAMPLES} needed "
                         f"– run ≥ {MIN_SAMPLES} images.")
        for metric in self._metrics_present():
            spec = M.METRICS[metric]
            head = f"{metric} ({spec.better} is better): "
            best = self.best(metric)
            present = [m for m in self.compared if self.interval(m, metric).n]
            if best is not None:
                lines.append(head + best.words())
            elif present:
                lines.append(head + f"{present[0]} {self.interval(present[0], metric).mean:.3g}.")
            if metric == "randomization":
                nulls = [f"{m} {self.comparison(m, NULL, metric).difference.mean:+.3g}" for m in self.compared
                         if self.comparison(m, NULL, metric).n]
                if nulls:
                    lines.append(f"randomization against the null (similarity minus the similarity of two randomized "
                                 f"copies' maps): {', '.join(nulls)}; controls: not applicable (their maps do not "
                                 "depend on the weights).")
        for flag in self.flags():
            lines.append("Flag: " + flag["words"])
        table = self.controls_table()
        if self.enough and table and all(row["beats"] for row in table):
            lines.append(f"Every method beats every control on every metric ({len(table)} tests, each passing after "
                         "Holm's adjustment).")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """``{"summary", "comparisons", "controls", "best", "flags", "enough", "min_samples", "verdict", "config"}``."""
        return json_ready({
            "summary": self._summary_rows(),
            "comparisons": self.comparisons(),
            "controls": self.controls_table(),
            "best": {metric: best.to_dict() for metric in self._metrics_present()
                     if (best := self.best(metric)) is not None},
            "flags": self.flags(),
            "enough": self.enough,
            "min_samples": MIN_SAMPLES,
            "family": len(self._family()),
            "verdict": self.verdict(),
            "config": self.config,
        })

    @classmethod
    def from_results(cls, path: str) -> Evaluation:
        """Open a results file written by ``evaluate(out=...)`` or ``explainer evaluate --out``."""
        from explainer.run import read_results

        config, rows = read_results(path)
        if config.get("kind") != "evaluation":
            raise InputError(f"{path} is not an evaluation results file (kind={config.get('kind')!r}).")
        rows = sorted(rows, key=lambda r: int(r["image"]))
        return cls(rows, list(config["methods"]), list(config["metrics"]), config)
