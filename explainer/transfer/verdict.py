"""The transfer verdict in plain words, from intervals rather than means.

Two strategies are compared at a shot level by their accuracies paired by seed (same few-shot
sample): :func:`explainer.stats.paired_difference` gives the mean difference with a 95 % bootstrap
interval, and a winner is named only where that interval excludes zero. With one seed there is no
interval, and the verdict says so instead of naming anyone – for the whole study, or for the shot levels
where some strategy has a single seed (a study still running, or cut short).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from explainer.errors import InputError
from explainer.stats import Interval, difference_words, paired_difference
from explainer.transfer.strategies import STRATEGIES

if TYPE_CHECKING:
    from explainer.transfer.results import TransferResults

NO_VERDICT = "One seed: no verdict – add seeds."
UNIT = " points"


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


class _Cells:
    """Accuracy by seed for every (strategy, shots) of a results table."""

    def __init__(self, results: TransferResults) -> None:
        table = results.table
        self.by_seed = table.pivot_table(index=["strategy", "shots"], columns="seed", values="accuracy", aggfunc="mean")
        self.means = table.groupby(["strategy", "shots"])["accuracy"].mean()
        self.names = [s for s in results.strategies if s in set(table["strategy"])]
        self.shots = sorted(int(k) for k in table["shots"].unique())
        seeds = table.groupby(["shots", "strategy"])["seed"].nunique().groupby(level="shots").min()
        #: Shot levels where every measured strategy has at least two seeds: the only ones judged.
        self.judged = [k for k in self.shots if int(seeds[k]) >= 2]

    def present(self, shots: int) -> list[str]:
        """Strategies measured at ``shots``, best mean first."""
        names = [s for s in self.names if (s, shots) in self.means.index]
        return sorted(names, key=lambda s: -float(self.means[(s, shots)]))

    def difference(self, a: str, b: str, shots: int) -> Interval:
        """Mean of accuracy(a) − accuracy(b) in points over the seeds both have, with its interval."""
        pair = self.by_seed.loc[[(a, shots), (b, shots)]].dropna(axis=1)
        values = 100 * pair.to_numpy(np.float64)
        return paired_difference(values[0], values[1])

    def mean(self, strategy: str, shots: int) -> float:
        """Mean accuracy of a cell."""
        return float(self.means[(strategy, shots)])


def _words(a: str, b: str, interval: Interval) -> str:
    """difference_words with the better strategy first, so the interval quoted is winner − loser."""
    if interval.mean < 0:
        a, b = b, a
        interval = Interval(-interval.mean, -interval.high, -interval.low, interval.n, interval.confidence)
    return difference_words(a, b, interval, higher_is_better=True, unit=UNIT, over="seeds").rstrip(".")


def comparisons(results: TransferResults) -> pd.DataFrame:
    """Every pair of strategies at every shot level, paired by seed (differences in accuracy points)."""
    cells = _Cells(results)
    records = []
    for shots in cells.shots:
        names = [s for s in cells.names if s in cells.present(shots)]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                interval = cells.difference(a, b, shots)
                records.append({"shots": shots, "a": a, "b": b, "difference": interval.mean, "ci_low": interval.low,
                                "ci_high": interval.high, "n": interval.n, "distinguishable": interval.excludes(0.0)})
    return pd.DataFrame(records, columns=["shots", "a", "b", "difference", "ci_low", "ci_high", "n", "distinguishable"])


def examples_needed(results: TransferResults, threshold: float) -> dict[str, int | None]:
    """Fewest labelled examples per class whose mean accuracy reaches ``threshold``; None where none did."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold is an accuracy fraction in (0, 1]; got {threshold}. For 80% pass 0.8.")
    cells = _Cells(results)
    return {
        name: next((k for k in cells.shots if (name, k) in cells.means.index and cells.mean(name, k) >= threshold), None)
        for name in cells.names
    }


def _best_sentence(cells: _Cells) -> str:
    """Who is best at each shot level – only where the runner-up's paired interval excludes zero."""
    clear: dict[str, list[int]] = {}
    tied: dict[tuple[str, ...], list[int]] = {}
    for shots in cells.judged:
        ranked = cells.present(shots)
        best = ranked[0]
        close = [s for s in ranked[1:] if not cells.difference(best, s, shots).excludes(0.0)]
        if close:
            tied.setdefault((best, *close), []).append(shots)
        else:
            clear.setdefault(best, []).append(shots)
    parts = []
    if clear:
        where = "; ".join(f"{name} at {_ranges(levels, cells.shots)}" for name, levels in clear.items())
        parts.append(f"Best beyond the spread across seeds: {where} per class.")
    for names, levels in tied.items():
        parts.append(f"At {_ranges(levels, cells.shots)} per class {_listing(list(names))} are not distinguishable.")
    return " ".join(parts)


def _transfer_sentence(cells: _Cells, pretrained: list[str], baselines: list[str]) -> str:
    """Whether the best pretrained strategy beats the best from-scratch one, shot level by shot level."""
    outcome: dict[str, list[int]] = {"helps": [], "hurts": [], "ties": []}
    example: dict[str, str] = {}
    for shots in cells.judged:
        ranked = cells.present(shots)
        pre = [s for s in ranked if s in pretrained]
        base = [s for s in ranked if s in baselines]
        if not (pre and base):
            continue
        interval = cells.difference(pre[0], base[0], shots)
        kind = "ties" if not interval.excludes(0.0) else ("helps" if interval.mean > 0 else "hurts")
        outcome[kind].append(shots)
        example.setdefault(kind, f"at {shots} per class {_words(pre[0], base[0], interval)}")
    measured = [k for kind in outcome.values() for k in kind]
    if outcome["helps"] and len(outcome["helps"]) == len(measured):
        return f"Transfer helps at every shot level: {example['helps']}."
    if not outcome["helps"]:
        lead = "Transfer does not help here: a from-scratch strategy is better or not distinguishable at every shot level"
        return f"{lead} ({'; '.join(example[kind] for kind in ('hurts', 'ties') if kind in example)})."
    parts = [f"Transfer helps at {_ranges(outcome['helps'], cells.shots)} per class ({example['helps']})"]
    if outcome["hurts"]:
        parts.append(f"a from-scratch strategy is better at {_ranges(outcome['hurts'], cells.shots)} ({example['hurts']})")
    if outcome["ties"]:
        parts.append(f"not distinguishable at {_ranges(outcome['ties'], cells.shots)} ({example['ties']})")
    return "; ".join(parts) + "."


def _pixels_sentence(cells: _Cells, input_shape: tuple[int, ...]) -> str | None:
    """The counter-example: raw pixels beating the ImageNet probe, where the interval says so."""
    levels = [k for k in cells.judged if {"pixels", "linear_probe"} <= set(cells.present(k))]
    beats = [k for k in levels if (d := cells.difference("pixels", "linear_probe", k)).excludes(0.0) and d.mean > 0]
    if not beats:
        return None
    k = max(beats, key=lambda level: cells.mean("pixels", level) - cells.mean("linear_probe", level))
    where = "at every shot level" if beats == levels else f"at {_ranges(beats, cells.shots)} per class"
    size = "×".join(str(n) for n in input_shape[1:])
    return (
        f"Raw pixels beat the pretrained linear probe {where} ({_pct(cells.mean('pixels', k))} vs "
        f"{_pct(cells.mean('linear_probe', k))} at {k} per class): the ImageNet features are made for natural "
        f"photos, not for these {size} images."
    )


def verdict(results: TransferResults, threshold: float = 0.8) -> str:
    """Plain words on a transfer study; names a winner only where the seed-paired interval excludes zero."""
    cells = _Cells(results)
    needed = examples_needed(results, threshold)
    parts = [f"{name} {n}" if n is not None else f"{name} more than {cells.shots[-1]}" for name, n in needed.items()]
    reach = f"Labelled examples per class needed to reach {threshold:.0%} (mean over seeds): {', '.join(parts)}."
    if not cells.judged:
        return f"{NO_VERDICT} {reach}"
    sentences = [_best_sentence(cells)]
    pretrained = [s for s in cells.names if s in STRATEGIES and STRATEGIES[s].pretrained]
    baselines = [s for s in cells.names if s not in pretrained]
    if pretrained and baselines:
        sentences.append(_transfer_sentence(cells, pretrained, baselines))
    pixels = _pixels_sentence(cells, results.input_shape)
    if pixels:
        sentences.append(pixels)
    unjudged = [k for k in cells.shots if k not in cells.judged]
    if unjudged:
        sentences.append(f"At {_ranges(unjudged, cells.shots)} per class: one seed: no verdict – add seeds.")
    sentences.append(reach)
    return " ".join(sentences)
