"""The transfer verdict in plain words, decided by :mod:`explainer.stats` – never from means.

Two strategies are compared at a shot level over the seeds both have (same few-shot sample, same test
images): with per-image correctness in the rows, :func:`explainer.stats.crossed_compare` gives a
t-interval and t-test that count the sampling of seeds *and* of test images; rows without it (older
files) fall back to :func:`explainer.stats.compare` over seeds. Every sentence is one family: its
comparisons (strategies × shot levels) are Holm-adjusted together (:func:`explainer.stats.adjust`), a
"best" must beat every other strategy after adjustment (:func:`explainer.stats.decide_best`), and below
``stats.MIN_SAMPLES`` seeds nobody is named – the words say how many seeds agree instead.

This module reads a results table only; it does not import :mod:`explainer.transfer.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from explainer import stats
from explainer.errors import InputError
from explainer.stats import Best, Comparison
from explainer.transfer.strategies import STRATEGIES

NO_VERDICT = "One seed: no verdict – add seeds."
UNIT = " points"
OVER = "seeds"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _ranges(values: Sequence[int], all_values: Sequence[int]) -> str:
    """'1–5' for consecutive members of ``all_values``, joined with commas."""
    groups: list[list[int]] = []
    for value in values:
        if groups and list(all_values).index(value) == list(all_values).index(groups[-1][-1]) + 1:
            groups[-1].append(value)
        else:
            groups.append([value])
    return ", ".join(f"{g[0]}" if len(g) == 1 else f"{g[0]}–{g[-1]}" for g in groups)


def _listing(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class Cells:
    """Accuracy (and per-image correctness, where recorded) by seed for every (strategy, shots) of a table."""

    def __init__(self, table: pd.DataFrame, strategies: Sequence[str]) -> None:
        self.table = table
        self.by_seed = table.pivot_table(index=["strategy", "shots"], columns="seed", values="accuracy", aggfunc="mean")
        self.means = table.groupby(["strategy", "shots"])["accuracy"].mean()
        self.names = [s for s in strategies if s in set(table["strategy"])]
        self.shots = sorted(int(k) for k in table["shots"].unique())
        seeds = table.groupby(["shots", "strategy"])["seed"].nunique().groupby(level="shots").min()
        #: Shot levels where every measured strategy has at least two seeds: the only ones judged.
        self.judged = [k for k in self.shots if int(seeds[k]) >= 2]
        has_correct = "correct" in table.columns and table["correct"].map(lambda c: isinstance(c, str) and bool(c)).all()
        self.crossed = bool(has_correct) and len(table) > 0

    def present(self, shots: int) -> list[str]:
        """Strategies measured at ``shots``, best mean first."""
        names = [s for s in self.names if (s, shots) in self.means.index]
        return sorted(names, key=lambda s: -float(self.means[(s, shots)]))

    def _matrix(self, strategy: str, shots: int, seeds: Sequence[int]) -> np.ndarray:
        part = self.table[(self.table["strategy"] == strategy) & (self.table["shots"] == shots)]
        by_seed = dict(zip(part["seed"].astype(int), part["correct"]))
        return 100.0 * np.array([[c == "1" for c in by_seed[s]] for s in seeds], dtype=np.float64)

    def compare(self, a: str, b: str, shots: int) -> Comparison:
        """``a`` against ``b`` at ``shots`` in accuracy points over the seeds both have (unadjusted)."""
        pair = self.by_seed.loc[[(a, shots), (b, shots)]].dropna(axis=1)
        if self.crossed and pair.shape[1] >= 1:
            seeds = [int(s) for s in pair.columns]
            return stats.crossed_compare(a, self._matrix(a, shots, seeds), b, self._matrix(b, shots, seeds),
                                         higher_is_better=True, over=OVER)
        values = 100 * pair.to_numpy(np.float64)
        return stats.compare(a, values[0], b, values[1], higher_is_better=True, over=OVER)

    def interval(self, strategy: str, shots: int) -> stats.Interval:
        """The mean accuracy of a cell (a fraction) with its interval (seeds × test images where recorded)."""
        part = self.table[(self.table["strategy"] == strategy) & (self.table["shots"] == shots)].sort_values("seed")
        if self.crossed:
            return stats.crossed_interval(self._matrix(strategy, shots, list(part["seed"].astype(int)))).scaled(0.01)
        return stats.mean_interval(part["accuracy"].to_numpy(np.float64))

    def mean(self, strategy: str, shots: int) -> float:
        """Mean accuracy of a cell."""
        return float(self.means[(strategy, shots)])


#: Columns of a comparisons table (:func:`comparisons`, :func:`headline`).
COMPARISON_COLUMNS = ["shots", "a", "b", "difference", "ci_low", "ci_high", "n", "interval", "p_value", "p_adjusted",
                      "family", "enough", "agree", "winner", "distinguishable"]


def comparisons(cells: Cells) -> pd.DataFrame:
    """Every pair of strategies at every shot level (accuracy points), Holm-adjusted over all of them."""
    keyed: list[tuple[int, Comparison]] = []
    for shots in cells.shots:
        names = [s for s in cells.names if s in cells.present(shots)]
        keyed.extend((shots, cells.compare(a, b, shots)) for i, a in enumerate(names) for b in names[i + 1:])
    adjusted = stats.adjust([c for _, c in keyed]) if keyed else []
    records = [{"shots": shots, **c.to_dict(), "distinguishable": c.decided} for (shots, _), c in zip(keyed, adjusted)]
    return pd.DataFrame(records, columns=COMPARISON_COLUMNS)


def headline(cells: Cells) -> pd.DataFrame:
    """At each judged shot level the best pretrained strategy (by mean) against the best from-scratch one, paired
    by seed: the family of :func:`transfer_comparisons` (Holm over the levels) – the one the verdict's "transfer
    helps" sentence rests on – oriented so that ``a`` is the pretrained strategy (``difference`` > 0: pretrained
    ahead). Levels that lack either kind, or have one seed, are left out; strategies not in the registry count as
    from scratch, as in the verdict."""
    pretrained = {name for name in cells.names if name in STRATEGIES and STRATEGIES[name].pretrained}
    rows = []
    for shots, comparison in transfer_comparisons(cells).items():
        row: dict[str, Any] = {"shots": shots, **comparison.to_dict(), "distinguishable": comparison.decided}
        if row["a"] not in pretrained:
            row.update(a=row["b"], b=row["a"], difference=-row["difference"], ci_low=-row["ci_high"],
                       ci_high=-row["ci_low"])
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def examples_needed(cells: Cells, threshold: float) -> dict[str, int | None]:
    """Fewest labelled examples per class whose mean accuracy reaches ``threshold``; None where none did."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold is an accuracy fraction in (0, 1]; got {threshold}. For 80% pass 0.8.")
    return {
        name: next((k for k in cells.shots if (name, k) in cells.means.index and cells.mean(name, k) >= threshold), None)
        for name in cells.names
    }


def best_by_level(cells: Cells) -> dict[int, Best]:
    """The :class:`~explainer.stats.Best` at each judged shot level; Holm over every level's comparisons together."""
    tops: list[tuple[int, str, int]] = []
    family: list[Comparison] = []
    for shots in cells.judged:
        ranked = cells.present(shots)
        tops.append((shots, ranked[0], len(family)))
        family.extend(cells.compare(ranked[0], other, shots) for other in ranked[1:])
    adjusted = stats.adjust(family) if family else []
    ends = [start for _, _, start in tops[1:]] + [len(adjusted)]
    return {shots: stats.decide_best(top, adjusted[start:end]) for (shots, top, start), end in zip(tops, ends)}


def _too_few(best: Best) -> str:
    runner = best.comparisons[0]
    other = runner.b if runner.leader == runner.a else runner.a
    return (f"{best.top} has the best mean, {runner.agree} of {runner.n} {OVER} agree it beats {other} "
            f"(too few to name a winner: run ≥ {stats.MIN_SAMPLES} {OVER})")


def _best_sentence(cells: Cells, bests: dict[int, Best]) -> str:
    """Who is best at each shot level – only where it beats every other strategy after Holm's adjustment."""
    clear: dict[str, list[int]] = {}
    tied: dict[tuple[str, ...], list[int]] = {}
    parts = []
    family = 0
    for shots, best in bests.items():
        if not best.comparisons:
            continue
        family = best.comparisons[0].family
        if not best.enough:
            parts.append(f"At {shots} per class {_too_few(best)}.")
        elif best.winner:
            clear.setdefault(best.winner, []).append(shots)
        else:
            tied.setdefault(best.tied, []).append(shots)
    if clear:
        where = "; ".join(f"{name} at {_ranges(levels, cells.shots)}" for name, levels in clear.items())
        parts.insert(0, f"Best, beating every other strategy after Holm's adjustment over {family} comparisons: "
                        f"{where} per class.")
    for names, levels in tied.items():
        parts.append(f"At {_ranges(levels, cells.shots)} per class {_listing(list(names))} cannot be told apart "
                     f"(Holm over {family} comparisons).")
    return " ".join(parts)


def transfer_comparisons(cells: Cells) -> dict[int, Comparison]:
    """Best pretrained vs best from-scratch strategy at each judged level, Holm over the levels."""
    pretrained = [s for s in cells.names if s in STRATEGIES and STRATEGIES[s].pretrained]
    keyed: list[tuple[int, Comparison]] = []
    for shots in cells.judged:
        ranked = cells.present(shots)
        pre = [s for s in ranked if s in pretrained]
        base = [s for s in ranked if s not in pretrained]
        if pre and base:
            first, second = sorted((pre[0], base[0]), key=lambda name: -cells.mean(name, shots))
            keyed.append((shots, cells.compare(first, second, shots)))
    return dict(zip([k for k, _ in keyed], stats.adjust([c for _, c in keyed]))) if keyed else {}


def _transfer_sentence(cells: Cells, found: dict[int, Comparison]) -> str | None:
    """Whether the best pretrained strategy beats the best from-scratch one, shot level by shot level."""
    if not found:
        return None
    pretrained = {s for s in cells.names if s in STRATEGIES and STRATEGIES[s].pretrained}
    outcome: dict[str, list[int]] = {"helps": [], "hurts": [], "ties": [], "few": []}
    example: dict[str, str] = {}
    for shots, c in found.items():
        kind = ("few" if not c.enough else "ties" if not c.decided else "helps" if c.winner in pretrained else "hurts")
        outcome[kind].append(shots)
        example.setdefault(kind, f"at {shots} per class {c.words(UNIT).rstrip('.')}")
    parts = []
    if outcome["helps"]:
        everywhere = len(outcome["helps"]) == len(found)
        parts.append(f"Transfer helps {'at every shot level' if everywhere else 'at ' + _ranges(outcome['helps'], cells.shots) + ' per class'} "
                     f"({example['helps']})")
    if outcome["hurts"]:
        parts.append(f"a from-scratch strategy is better at {_ranges(outcome['hurts'], cells.shots)} per class "
                     f"({example['hurts']})")
    if outcome["ties"]:
        parts.append(f"pretrained and from-scratch cannot be told apart at {_ranges(outcome['ties'], cells.shots)} "
                     f"per class ({example['ties']})")
    if outcome["few"]:
        parts.append(f"too few seeds to say whether transfer helps at {_ranges(outcome['few'], cells.shots)} per class "
                     f"({example['few']})")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def pixel_comparisons(cells: Cells) -> dict[int, Comparison]:
    """Raw pixels vs the pretrained linear probe at each judged level, Holm over the levels."""
    levels = [k for k in cells.judged if {"pixels", "linear_probe"} <= set(cells.present(k))]
    adjusted = stats.adjust([cells.compare("pixels", "linear_probe", k) for k in levels]) if levels else []
    return dict(zip(levels, adjusted))


def _pixels_sentence(cells: Cells, found: dict[int, Comparison], input_shape: tuple[int, ...]) -> str | None:
    """The counter-example: raw pixels beating the ImageNet probe, where the adjusted test says so."""
    beats = [k for k, c in found.items() if c.winner == "pixels"]
    if not beats:
        return None
    k = max(beats, key=lambda level: cells.mean("pixels", level) - cells.mean("linear_probe", level))
    where = "at every shot level" if beats == list(found) else f"at {_ranges(beats, cells.shots)} per class"
    size = "×".join(str(n) for n in input_shape[1:])
    return (
        f"Raw pixels beat the pretrained linear probe {where} ({_pct(cells.mean('pixels', k))} vs "
        f"{_pct(cells.mean('linear_probe', k))} at {k} per class; Holm over {found[k].family} shot levels): the "
        f"ImageNet features are made for natural photos, not for these {size} images."
    )


def verdict(cells: Cells, input_shape: tuple[int, ...], threshold: float = 0.8) -> str:
    """Plain words on a transfer study; names a winner only as :mod:`explainer.stats` decides."""
    needed = examples_needed(cells, threshold)
    parts = [f"{name} {n}" if n is not None else f"{name} more than {cells.shots[-1]}" for name, n in needed.items()]
    reach = f"Labelled examples per class needed to reach {threshold:.0%} (mean over seeds): {', '.join(parts)}."
    if not cells.judged:
        return f"{NO_VERDICT} {reach}"
    sentences = [_best_sentence(cells, best_by_level(cells)), _transfer_sentence(cells, transfer_comparisons(cells)),
                 _pixels_sentence(cells, pixel_comparisons(cells), input_shape)]
    unjudged = [k for k in cells.shots if k not in cells.judged]
    if unjudged:
        sentences.append(f"At {_ranges(unjudged, cells.shots)} per class: one seed: no verdict – add seeds.")
    sentences.append(reach)
    return " ".join(s for s in sentences if s)


def details(cells: Cells) -> dict[str, Any]:
    """JSON-ready decisions behind the words: each level's best, the transfer and pixel families, ``enough``."""
    bests = best_by_level(cells)
    return {
        "enough": bool(bests) and all(b.enough for b in bests.values()),
        "min_samples": stats.MIN_SAMPLES,
        "interval": "t-crossed (seeds × test images)" if cells.crossed else "t (seeds)",
        "best": [{"shots": k, **b.to_dict()} for k, b in bests.items()],
        "transfer": [{"shots": k, **c.to_dict()} for k, c in transfer_comparisons(cells).items()],
        "pixels_vs_probe": [{"shots": k, **c.to_dict()} for k, c in pixel_comparisons(cells).items()],
    }
