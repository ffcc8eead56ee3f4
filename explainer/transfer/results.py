"""Transfer results: the tidy table of runs, its summary with intervals across seeds, and reading a results file.

:meth:`TransferResults.estimate` turns the measured seconds per run into a :class:`TransferEstimate` for a new study.

:func:`open_results` only reads a results file – it never trains or scores anything; completing an
interrupted file is the explicit :func:`explainer.transfer.experiment.resume_results`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import explainer.transfer.verdict as _verdict
from explainer.errors import InputError
from explainer.jsonable import json_ready
from explainer.run import read_results
from explainer.run.long_call import duration
from explainer.transfer.strategies import STRATEGIES

#: Columns of :attr:`TransferResults.table`.
TABLE_COLUMNS = ["dataset", "model_name", "strategy", "shots", "seed", "accuracy", "seconds", "params", "correct"]
PROTOCOL = ("few-shot sample per class and seed, shared by all strategies; settings chosen on a validation split of "
            "the sample (the default at 1 shot); accuracy on the full test split, intervals over seeds × test images")


@dataclass(frozen=True)
class TransferEstimate:
    """Seconds a transfer study should take, from the seconds per run measured in finished results
    (:meth:`TransferResults.estimate`): ``runs`` counts only the strategies those results measured; ``unknown``
    are the asked strategies they lack (not in ``seconds``); ``device`` is where the runs were measured."""

    seconds: float
    runs: int
    unknown: tuple[str, ...]
    device: str

    def words(self, source: str = "reference") -> str:
        """The estimate in one sentence; ``source`` names the results it comes from ("the {source} study")."""
        extra = f" (plus {', '.join(self.unknown)}, not in the {source} runs)" if self.unknown else ""
        return (f"≈ {duration(self.seconds)} for {self.runs} runs{extra} – the median seconds per run measured in the "
                f"{source} study on {self.device}, times the runs.")


@dataclass
class TransferResults:
    """Accuracy of each strategy per (labelled examples per class, seed), and how it was measured.

    ``table`` is tidy: one row per run with ``dataset, model_name, strategy, shots, seed, accuracy,
    seconds`` (accuracy on the full test split, in [0, 1]; seconds of that run's training and
    scoring). ``feature_seconds`` is the one-off cost of the frozen features (``feature_source``:
    computed, disk or memory), shared by every linear-probe and fine-tune run; both are None for a
    file that was only read. ``seconds`` is this call's wall time (for a file read back: the sum of
    its runs' seconds). ``method`` is the study's name (``"transfer"``); ``protocol`` says in words how
    it was measured; the strategies are ``strategies`` (registry names).
    """

    table: pd.DataFrame
    dataset: str
    model_name: str
    num_classes: int
    input_shape: tuple[int, ...]
    strategies: list[str]
    test_counts: list[int]
    config: dict[str, Any]
    device: str
    seconds: float
    feature_seconds: float | None = None
    feature_source: str | None = None
    resumed: int = 0
    out: str | None = None
    method: str = "transfer"
    protocol: str = PROTOCOL
    descriptions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, rows: Sequence[Mapping[str, Any]], config: Mapping[str, Any], *, strategies: Sequence[str] | None = None,
        device: str | None = None, seconds: float | None = None, **extra: Any,
    ) -> TransferResults:
        """Results from a study's configuration and its rows (``{strategy, shots, seed, accuracy, seconds, ...}``)."""
        try:
            frame = pd.DataFrame(
                [{"strategy": str(r["strategy"]), "shots": int(r["shots"]), "seed": int(r["seed"]),
                  "accuracy": float(r["accuracy"]), "seconds": float(r.get("seconds") or 0.0),
                  "params": r.get("params"), "correct": r.get("correct")} for r in rows],
                columns=["strategy", "shots", "seed", "accuracy", "seconds", "params", "correct"],
            )
            dataset, model_name = str(config["dataset"]), str(config["model_name"])
            counts = [int(n) for n in config["test_counts"]]
            shape = tuple(int(n) for n in config["input_shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"These rows or this configuration are not those of a transfer study ({type(exc).__name__}: {exc})."
            ) from None
        frame.insert(0, "model_name", model_name)
        frame.insert(0, "dataset", dataset)
        names = list(strategies) if strategies is not None else list(dict.fromkeys(frame["strategy"]))
        devices = sorted({str(r["device"]) for r in rows if r.get("device")})
        return cls(
            table=frame[TABLE_COLUMNS], dataset=dataset, model_name=model_name, num_classes=len(counts),
            input_shape=shape, strategies=names, test_counts=counts, config=dict(config),
            device=device or ", ".join(devices) or "unknown",
            seconds=float(frame["seconds"].sum()) if seconds is None else seconds,
            descriptions={n: str(STRATEGIES[n]) if n in STRATEGIES else "" for n in names}, **extra,
        )

    @property
    def chance(self) -> float:
        """Accuracy of guessing the most frequent test class."""
        return max(self.test_counts) / sum(self.test_counts)

    @property
    def seeds(self) -> int:
        """The fewest seeds any (strategy, shots) cell has."""
        return int(self.table.groupby(["strategy", "shots"])["seed"].nunique().min()) if len(self.table) else 0

    def _cells(self) -> _verdict.Cells:
        return _verdict.Cells(self.table, self.strategies)

    def summary(self) -> pd.DataFrame:
        """One row per strategy × shots: ``mean`` accuracy, its 95 % t-interval ``ci_low``/``ci_high`` (over
        seeds × test images where rows carry per-image correctness, else over seeds; NaN with one seed),
        ``std`` across seeds, ``n`` (seeds), ``interval`` (its method) and the chosen ``params`` (most often)."""
        cells = self._cells()
        records = []
        for strategy in self.strategies:
            part = self.table[self.table["strategy"] == strategy]
            for shots in sorted(int(k) for k in part["shots"].unique()):
                cell = part[part["shots"] == shots]
                values = cell["accuracy"].to_numpy(np.float64)
                interval = cells.interval(strategy, shots)
                chosen = cell["params"].map(lambda p: json.dumps(p, sort_keys=True) if p else "").mode()
                records.append({
                    "strategy": strategy, "shots": shots, "mean": interval.mean, "ci_low": interval.low,
                    "ci_high": interval.high, "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "n": interval.n, "interval": interval.method, "params": chosen.iloc[0] if len(chosen) else "",
                })
        return pd.DataFrame(records, columns=["strategy", "shots", "mean", "ci_low", "ci_high", "std", "n", "interval",
                                              "params"])

    def examples_needed(self, threshold: float) -> dict[str, int | None]:
        """Fewest labelled examples per class whose mean accuracy reaches ``threshold`` (a fraction).

        ``None`` means no measured shot level reached it.
        """
        return _verdict.examples_needed(self._cells(), threshold)

    def comparisons(self) -> pd.DataFrame:
        """Every pair of strategies at every shot level, paired by seed (and test image): difference in accuracy
        points with its interval, raw and Holm-adjusted p (over all pairs × levels), ``enough`` and the winner."""
        return _verdict.comparisons(self._cells())

    def headline(self) -> pd.DataFrame:
        """At each shot level with ≥ 2 seeds the best pretrained strategy against the best from-scratch one (by mean),
        paired by seed: the difference in accuracy points with its 95 % interval, Holm over the levels – the family
        the verdict's "transfer helps" sentence rests on – oriented so that ``a`` is the pretrained strategy
        (positive = pretrained ahead)."""
        return _verdict.headline(self._cells())

    def estimate(self, strategies: Sequence[str], shots: Sequence[int], seeds: int) -> TransferEstimate | None:
        """How long a study of ``strategies`` × ``shots`` × ``seeds`` runs should take, from the median seconds per
        run these results measured for each strategy (on :attr:`device`), times the runs. Strategies these results
        never ran are left out of the sum and listed in ``unknown``; None when none of them ran (or nothing asked)."""
        if not strategies or not shots:
            return None
        per_run = self.table.groupby("strategy")["seconds"].median()
        known = [s for s in strategies if s in per_run.index]
        if not known:
            return None
        return TransferEstimate(
            seconds=sum(float(per_run[s]) for s in known) * len(shots) * seeds,
            runs=len(known) * len(shots) * seeds,
            unknown=tuple(s for s in strategies if s not in per_run.index),
            device=self.device,
        )

    def verdict(self, threshold: float = 0.8) -> str:
        """Plain words: which strategy is best where and whether pretrained features help – decided by
        :mod:`explainer.stats` (Holm per sentence, ≥ ``MIN_SAMPLES`` seeds to name a winner)."""
        return _verdict.verdict(self._cells(), self.input_shape, threshold)

    def verdict_details(self) -> dict[str, Any]:
        """The decisions behind :meth:`verdict`: raw and adjusted p-values, ``enough``, winners and tied sets."""
        return _verdict.details(self._cells())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready runs, summary, verdict and provenance (what the CLI prints)."""
        return json_ready({
            "model_name": self.model_name,
            "method": self.method,
            "strategies": self.strategies,
            "dataset": self.dataset,
            "config": self.config,
            "results": self.table[["strategy", "shots", "seed", "accuracy", "seconds", "params"]].to_dict("records"),
            "summary": self.summary().to_dict("records"),
            "verdict": self.verdict(),
            "verdict_details": self.verdict_details(),
            "enough": self.verdict_details()["enough"],
            "chance": self.chance,
            "device": self.device,
            "seconds": self.seconds,
            "feature_seconds": self.feature_seconds,
            "feature_source": self.feature_source,
            "resumed": self.resumed,
            "out": self.out,
        })


def open_results(source: str | Path | bytes, *, name: str = "upload") -> TransferResults:
    """Read a ``compare_transfer(out=path)`` results file (a path, or an upload's bytes named ``name``) as
    :class:`TransferResults`. Only reads.

    Nothing is trained or scored: an interrupted file gives the runs it holds
    (``resume_results(path)`` completes it).
    """
    path = Path(name) if isinstance(source, (bytes, bytearray)) else Path(source).expanduser()
    config, rows = read_results(source, name=name)
    if config.get("study") != "transfer":
        raise InputError(
            f"{path} is not a transfer results file (its configuration has no study 'transfer'); "
            "make one with `explainer transfer --out FILE`."
        )
    if not rows:
        raise InputError(f"{path} holds no finished runs yet; run compare_transfer(..., out={str(path)!r}) first.")
    order = {name: i for i, name in enumerate(STRATEGIES)}
    names = sorted(dict.fromkeys(str(row["strategy"]) for row in rows), key=lambda n: order.get(n, len(order)))
    return TransferResults.from_rows(rows, config, strategies=names, out=str(path))
