"""The planted benchmark's report card: per-seed rows scored into intervals and verdicts against baselines."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from explainer import stats
from explainer.evidence.planted_settings import (
    BASELINE_CONTROL,
    NO_RELATION,
    NO_SHORTCUT_CONCEPT,
    OPTIONAL_KINDS,
    PATCH_LAYER,
    RANDOM_SITE,
    SCORED_OPTIONAL,
    PlantedSettings,
)
from explainer.jsonable import json_ready


def _interval_row(kind: str, method: str, values: Sequence[float], baseline: str | None,
                  comparison: stats.Comparison | None, **extra: Any) -> dict[str, Any]:
    interval = stats.mean_interval(values)
    return {"kind": kind, "method": method, "score": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
            "n": interval.n, "baseline": baseline,
            "beats_baseline": None if comparison is None else comparison.winner == method,
            "verdict": comparison.words() if comparison is not None else "", **extra}


def _by_seed(rows: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["seed"])


def _reliance_scores(rows: Sequence[Mapping[str, Any]], settings: PlantedSettings) -> list[dict[str, Any]]:
    found = _by_seed(rows, "reliance")
    out = []
    for name, label in (("uses", f"shortcut={settings.shortcut:g}"), ("ignores", "shortcut=0")):
        drops = [r["reliance"][name]["flip_drop"] for r in found]
        removal = stats.mean_interval([r["reliance"][name]["removal_drop"] for r in found])
        out.append(_interval_row("reliance", label, drops, None, None, metric="flip_drop",
                                 removal_drop=removal.mean, removal_ci_low=removal.low, removal_ci_high=removal.high))
    return out


def _scored_against(kind: str, values: Mapping[str, list[float]], baseline_of: Mapping[str, str],
                    metric: str, **extra: Any) -> list[dict[str, Any]]:
    """Rows for ``values`` (method → per-seed scores); each method in ``baseline_of`` compared with its
    baseline over seeds, Holm-adjusted over the kind's comparisons."""
    pairs = [(m, b) for m, b in baseline_of.items() if m in values and b in values]
    comparisons = stats.adjust([stats.compare(m, values[m], b, values[b], higher_is_better=True, over="seeds")
                                for m, b in pairs]) if pairs else []
    found = {m: c for (m, _), c in zip(pairs, comparisons)}
    return [_interval_row(kind, m, v, baseline_of.get(m) if m in found else None, found.get(m), metric=metric, **extra)
            for m, v in values.items()]


def _pixel_scores(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found = _by_seed(rows, "pixels")
    methods = list(dict.fromkeys(m for r in found for m in r["pixels"]))
    complete = [m for m in methods if all(m in r["pixels"] for r in found)]
    values = {m: [r["pixels"][m]["score"] for r in found] for m in complete}
    baseline_of = {m: BASELINE_CONTROL for m in complete if m != BASELINE_CONTROL}
    scored = _scored_against("pixels", values, baseline_of, "shortcut_share_difference")
    for row in scored:
        for part in ("shortcut_share_uses", "shortcut_share_ignores", "object_share_ignores"):
            row[part] = float(np.mean([r["pixels"][row["method"]][part] for r in found]))
    return scored


def _data_scores(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found = _by_seed(rows, "data")
    values = {name: [r["data"][name] for r in found] for name in ("tracin_self_influence", "training_loss", "random")}
    scored = _scored_against("data", values, {"tracin_self_influence": "training_loss", "training_loss": "random"},
                             "precision_at_k")
    versus_random = stats.compare("tracin_self_influence", values["tracin_self_influence"], "random", values["random"],
                                  higher_is_better=True, over="seeds")
    for row in scored:
        if row["method"] == "tracin_self_influence":
            row["beats_random"] = versus_random.winner == "tracin_self_influence"
            row["verdict_random"] = versus_random.words()
            row["flag"] = "" if row["beats_baseline"] else "does not beat the training-loss ranking"
    return scored


def _difference_scores(rows: Sequence[Mapping[str, Any]], kind: str, method: str, baseline: str,
                       parts: Sequence[str]) -> list[dict[str, Any]]:
    """A kind scored as uses − ignores against a difference of 0 (``baseline``), with the means of ``parts``."""
    found = _by_seed(rows, kind)
    if not found:
        return []
    values = {method: [r[kind]["score"] for r in found], baseline: [0.0] * len(found)}
    scored = _scored_against(kind, values, {method: baseline}, "shortcut_share_difference", layer=PATCH_LAYER)
    for part in parts:
        scored[0][part] = float(np.mean([r[kind][part] for r in found]))
    return scored


def _patching_scores(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return _difference_scores(rows, "patching", "position_patching", RANDOM_SITE,
                              ("shortcut_share_uses", "shortcut_share_ignores"))


def _concept_scores(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return _difference_scores(rows, "concepts", "nmf_concepts", NO_SHORTCUT_CONCEPT,
                              ("shortcut_share_uses", "shortcut_share_ignores", "best_alignment_uses",
                               "best_alignment_ignores"))


def _timeline_scores(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    found = _by_seed(rows, "timeline")
    if not found:
        return [], pd.DataFrame()
    frame = pd.DataFrame([{**point, "seed": r["seed"]} for r in found for point in r["timeline"]])
    series = [c for c in frame.columns if c.startswith("pixels:")]
    values: dict[str, list[float]] = {}
    for name in series:
        per_seed = []
        for _, group in frame.groupby("seed"):
            a, b = group["flip_drop"].to_numpy(), group[name].to_numpy()
            per_seed.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan)
        values[name] = per_seed
    # A control map does not change with the weights (r undefined); the baseline is "no relation", r = 0.
    values = {name: v for name, v in values.items() if np.isfinite(v).sum() >= 2}
    values[NO_RELATION] = [0.0] * len(found)
    scored = _scored_against("timeline", values, {m: NO_RELATION for m in values if m != NO_RELATION},
                             "pearson_r_with_reliance")
    means = frame.drop(columns="seed").groupby("epoch").mean().reset_index()
    return scored, means


@dataclass
class PlantedReport:
    """The report card: one row per (kind, method) with its score, interval over seeds and verdict; the
    measured reliance per seed; the timeline (per-epoch means) when asked for."""

    scores: list[dict[str, Any]]
    reliance: list[dict[str, Any]]
    timeline: pd.DataFrame
    rows: list[dict[str, Any]] = field(repr=False)
    settings: dict[str, Any] = field(repr=False)
    seeds: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    estimated_seconds: float | None = None
    device: str = "cpu"
    method: str = "planted_benchmark"
    model_name: str = "planted cnn"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the score rows, reliance per seed, the timeline, settings and cost."""
        return json_ready({
            "rows": self.scores, "reliance": self.reliance, "timeline": self.timeline.to_dict("records"),
            "settings": self.settings, "seeds": self.seeds, "skipped": self.skipped, "not_run": self.not_run,
            "seconds": self.seconds, "estimated_seconds": self.estimated_seconds, "device": self.device,
            "method": self.method, "model_name": self.model_name, "time_shares": self.time_shares(),
            "verdict": self.verdict(),
        })

    def summary(self) -> pd.DataFrame:
        """One row per (kind, method): score, interval, n, baseline and whether it beats it."""
        columns = ["kind", "method", "score", "ci_low", "ci_high", "n", "baseline", "beats_baseline"]
        return pd.DataFrame([{c: row.get(c) for c in columns} for row in self.scores], columns=columns)

    def time_shares(self) -> dict[str, float]:
        """Seconds spent training and in each kind's own work, summed over the rows computed."""
        shares: dict[str, float] = {"training": float(sum(r.get("train_seconds", 0.0) for r in self.rows))}
        for row in self.rows:
            shares[row["kind"]] = shares.get(row["kind"], 0.0) + float(row.get("seconds", 0.0))
        return shares

    def verdict(self) -> str:
        """In words: the measured reliance, then which explanations noticed it and which failed."""
        from explainer.evidence.controls import is_control

        parts = []
        for row in self.scores:
            if row["kind"] == "reliance":
                parts.append(f"Trained with {row['method']}, flipping the shortcut costs {row['score']:.0%} accuracy "
                             f"(95 % CI {row['ci_low']:.0%} to {row['ci_high']:.0%}, {row['n']} seeds).")
        for kind, what in (("pixels", "put more attribution on the shortcut when the network uses it than the "
                                      "random control does"),
                           ("patching", "restore the logit more at the shortcut's positions when the network uses "
                                        "it than when it does not"),
                           ("concepts", "put more of the concepts' importance on the shortcut when the network uses it"),
                           ("timeline", "follow the reliance over epochs (Pearson r above 0)")):
            rows = [r for r in self.scores if r["kind"] == kind and r["baseline"] and not is_control(r["method"])]
            if rows:
                good = [r["method"] for r in rows if r["beats_baseline"]]
                bad = [r["method"] for r in rows if not r["beats_baseline"]]
                parts.append(f"{kind}: {', '.join(good) or 'none'} {what}; not shown for {', '.join(bad) or 'none'}.")
        for row in self.scores:
            if row["kind"] == "data" and row["method"] == "tracin_self_influence":
                parts.append(f"TracIn finds mislabels with precision@k {row['score']:.0%}: {row['verdict']}"
                             + (f" Flagged: {row['flag']}." if row.get("flag") else ""))
        for kind, why in self.not_run.items():
            parts.append(f"{kind}: not run ({why}).")
        return " ".join(parts)


def _report(rows: Sequence[Mapping[str, Any]], settings: PlantedSettings, seeds: list[int], seconds: float,
            estimated: float | None) -> PlantedReport:
    timeline_rows, timeline_frame = _timeline_scores(rows)
    scores = (_reliance_scores(rows, settings) + _pixel_scores(rows) + _patching_scores(rows) + _concept_scores(rows)
              + _data_scores(rows) + timeline_rows)
    skipped: dict[str, str] = {}
    for row in rows:
        skipped.update(row.get("skipped") or {})
    not_run = {kind: f"{module} is not in this version" for kind, module in OPTIONAL_KINDS.items()
               if importlib.util.find_spec(module) is None}
    not_run.update({kind: "its scoring is not wired into the benchmark yet" for kind in OPTIONAL_KINDS
                    if kind not in not_run and kind not in SCORED_OPTIONAL})
    reliance = [{"seed": r["seed"], **r["reliance"]} for r in _by_seed(rows, "reliance")]
    return PlantedReport(scores=scores, reliance=reliance, timeline=timeline_frame, rows=[dict(r) for r in rows],
                         settings=json_ready(asdict(settings)), seeds=seeds, skipped=skipped, not_run=not_run,
                         seconds=seconds, estimated_seconds=estimated)
