"""`planted_benchmark`: which explanations find the truth planted in the ``planted`` dataset?

Per seed two small CNNs train on ``planted`` data that differ in one thing: in one the corner shortcut
shows the label's colour (``shortcut``, default 1.0), in the other it is random (``shortcut=0``). How much
each network *uses* the shortcut is measured causally, not assumed: its accuracy on the test set minus
its accuracy on the same images with the shortcut's colour flipped (:func:`shortcut_reliance`). Every
kind of explanation is then scored on whether it reports that difference:

* ``pixels`` – each attribution method (and the controls): the share of attribution mass on the shortcut
  for the network that uses it minus the share for the one that does not (baseline: the random control);
* ``data`` – precision@k of TracIn self-influence at finding the mislabeled training images (baseline: the
  training-loss ranking; the loss ranking itself is scored against random order);
* ``patching`` – position patching at ``conv2`` between test images of the two classes: the share of the restored
  logit difference at the shortcut's positions, for the network that uses it minus the one that does not;
* ``concepts`` – NMF concepts (CRAFT) of ``conv2``: the share of the concepts' importance that sits on the
  shortcut, same difference (both baselines: a difference of 0).

Units are seed × kind, run by :func:`explainer.run.run_units` (resumable results file, local or Ray); each
unit runs on one thread so rows are the same on every backend. Scores get Student-t intervals over seeds
and paired verdicts from :mod:`explainer.stats`. ``timeline=True`` adds, per seed, a network trained with
``timeline_shortcut`` whose reliance and explanations are measured after every epoch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from explainer import stats
from explainer._plumbing import json_ready
from explainer.errors import InputError
from explainer.inside.activations import capture
from explainer.run import finished_keys, run_units, unit_key

KINDS = ("reliance", "pixels", "data")
OPTIONAL_KINDS = {"patching": "explainer.inside.patching", "concepts": "explainer.inside.concepts"}
#: The optional kinds the benchmark scores when their module is there.
SCORED_OPTIONAL = ("patching", "concepts")
QUICK_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "gradcam")
CONTROLS = ("control:random", "control:edges", "control:brightness", "control:centre")
BASELINE_CONTROL = "control:random"
NO_RELATION = "no relation (r = 0)"
#: A site picked at random: its expected shortcut share is the shortcut's area share for both networks.
RANDOM_SITE = "random site (difference 0)"
#: Concepts that ignore the shortcut: their importance sits on it no more for the network that uses it.
NO_SHORTCUT_CONCEPT = "no shortcut concept (difference 0)"
#: The layer whose positions are patched (the planted CNN's second convolution, a 16×16 grid).
PATCH_LAYER = "conv2"
#: NMF concepts extracted at ``PATCH_LAYER`` per network.
CONCEPTS = 6
#: Methods left out of the full report by default: they need a transformer (rollout) or cost far more than
#: the rest at 32 px for the same question (LIME and KernelSHAP: hundreds of samples per image).
SKIPPED_BY_DEFAULT = ("attention_rollout", "lime", "kernel_shap")
ProgressCallback = Callable[[int, int, "float | None"], None]


@dataclass(frozen=True)
class PlantedSettings:
    """What one benchmark computes; every field is part of the results file's configuration."""

    methods: tuple[str, ...]
    n_train: int = 1000
    n_test: int = 400
    epochs: int = 8
    shortcut: float = 1.0
    mislabeled: float = 0.05
    images: int = 32
    timeline_shortcut: float = 0.9
    timeline_epochs: int = 12
    timeline_methods: tuple[str, ...] = ("saliency", "integrated_gradients", "gradcam", BASELINE_CONTROL)
    channels: tuple[int, ...] = (8, 16)
    hidden: int = 32
    lr: float = 1e-3
    batch_size: int = 32

    @classmethod
    def quick(cls, methods: Sequence[str] | None = None) -> PlantedSettings:
        """A small version for tests, the dashboard's live run and ``--quick``."""
        return cls(methods=tuple(methods or QUICK_METHODS + CONTROLS), n_train=400, n_test=160, epochs=6, images=16,
                   timeline_epochs=8, timeline_methods=("saliency", "gradcam", BASELINE_CONTROL))


# ------------------------------------------------------------------------------------------ reliance
@dataclass
class Reliance:
    """How much a network uses the shortcut, measured by changing it: accuracies on the test set as it is,
    with every shortcut flipped to another class's colour, and with the shortcut painted over."""

    accuracy: float
    flipped_accuracy: float
    removed_accuracy: float

    @property
    def flip_drop(self) -> float:
        """Accuracy lost when the shortcut lies (the reliance score, a fraction)."""
        return self.accuracy - self.flipped_accuracy

    @property
    def removal_drop(self) -> float:
        """Accuracy lost when the shortcut is painted over."""
        return self.accuracy - self.removed_accuracy

    def to_dict(self) -> dict[str, float]:
        """The three accuracies and both drops."""
        return {**asdict(self), "flip_drop": self.flip_drop, "removal_drop": self.removal_drop}


def shortcut_reliance(model: Any, dataset: Any) -> Reliance:
    """The measured reliance of ``model`` (an nn.Module or Classifier taking pixels) on ``dataset``'s shortcut."""
    from explainer.learn.training import evaluate

    truth = getattr(dataset, "truth", None)
    if truth is None:
        raise InputError(f"{getattr(dataset, 'name', dataset)!r} has no planted truth; use load_dataset('planted').")
    module = getattr(model, "module", model)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    y = dataset.y_test.to(device)
    accuracies = [evaluate(module, x.to(device), y)[1] for x in (dataset.x_test, truth.x_test_flipped, truth.x_test_removed)]
    return Reliance(*accuracies)


# ------------------------------------------------------------------------------------------- worker
@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread for a unit, so its row does not depend on the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shares(maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per image, the share of |relevance| (summed over channels) inside ``masks``."""
    heat = maps.abs().sum(1) if maps.ndim == 4 else maps.abs()
    inside = (heat * masks[:, 0].to(heat.dtype)).flatten(1).sum(1)
    total = heat.flatten(1).sum(1).clamp_min(1e-12)
    return (inside / total).numpy()


class _Worker:
    """Turns a unit ``{"seed", "kind"}`` into a row; trains each seed's networks once per process."""

    def __init__(self, settings: PlantedSettings) -> None:
        self.settings = settings
        self._nets: dict[tuple[int, float, int], tuple[Any, Any, float]] = {}

    def __call__(self, unit: Mapping[str, Any]) -> dict[str, Any]:
        seed, kind = int(unit["seed"]), str(unit["kind"])
        with _one_thread():
            started = time.perf_counter()
            trained_before = sum(t for *_, t in self._nets.values())
            handlers = {"reliance": self._reliance, "pixels": self._pixels, "data": self._data_kind,
                        "patching": self._patching, "concepts": self._concepts, "timeline": self._timeline}
            row = handlers[kind](seed)
            train_seconds = sum(t for *_, t in self._nets.values()) - trained_before
        return {**row, "seconds": time.perf_counter() - started - train_seconds, "train_seconds": train_seconds}

    def _load(self, seed: int, shortcut: float) -> Any:
        from explainer.data.datasets import load_dataset

        s = self.settings
        return load_dataset("planted", n_train=s.n_train, n_test=s.n_test, shortcut=shortcut, mislabeled=s.mislabeled,
                            seed=seed)

    def _net(self, seed: int, shortcut: float, epochs: int) -> tuple[Any, Any]:
        """(TrainingRun with checkpoints, dataset) for one seed and shortcut strength, trained once."""
        from explainer.learn.architectures import build_model
        from explainer.learn.training import fit

        key = (seed, shortcut, epochs)
        if key not in self._nets:
            s = self.settings
            data = self._load(seed, shortcut)
            started = time.perf_counter()
            network = build_model("cnn", data, seed=seed, channels=s.channels, pool="each", hidden=s.hidden)
            run = fit(network, data, epochs=epochs, lr=s.lr, batch_size=s.batch_size, seed=seed, telemetry="off",
                      device="cpu", keep_checkpoints=True)
            run.model.eval()
            self._nets[key] = (run, data, time.perf_counter() - started)
        run, data, _ = self._nets[key]
        return run, data

    def _pair(self, seed: int) -> dict[str, tuple[Any, Any]]:
        s = self.settings
        return {"uses": self._net(seed, s.shortcut, s.epochs), "ignores": self._net(seed, 0.0, s.epochs)}

    @staticmethod
    def _classifier(module: Any, data: Any, seed: int) -> Any:
        from explainer.models import Classifier

        channels, height, width = data.input_shape
        return Classifier.from_module(module.eval(), labels=data.class_names, input_size=(height, width),
                                      in_chans=channels, name=f"planted cnn (seed {seed})")

    def _reliance(self, seed: int) -> dict[str, Any]:
        nets = self._pair(seed)
        out: dict[str, Any] = {}
        for name, (run, data) in nets.items():
            out[name] = shortcut_reliance(run.model, data).to_dict()
        return {"reliance": out}

    def _maps(self, classifier: Any, pixels: torch.Tensor, method: str, seed: int) -> torch.Tensor:
        from explainer.attribution.explanation import explain
        from explainer.evidence.controls import control_maps, is_control

        if is_control(method):
            return control_maps(method, pixels, [seed * 100_003 + i for i in range(len(pixels))])
        with warnings.catch_warnings():  # an all-zero map is a result here (it scores 0), not news
            warnings.filterwarnings("ignore", message=".*map is all zero.*")
            return explain(classifier, pixels, method=method, budget_seconds=None).attributions

    def _pixels(self, seed: int) -> dict[str, Any]:
        n = self.settings.images
        scores: dict[str, dict[str, float]] = {}
        skipped: dict[str, str] = {}
        for name, (run, data) in self._pair(seed).items():
            classifier = self._classifier(run.model, data, seed)
            pixels = data.x_test[:n]
            for method in self.settings.methods:
                if method in skipped:
                    continue
                try:
                    maps = self._maps(classifier, pixels, method, seed)
                except InputError as exc:  # a method that does not apply to this network (e.g. rollout)
                    skipped[method] = str(exc)[:200]
                    continue
                entry = scores.setdefault(method, {})
                entry[f"shortcut_share_{name}"] = float(_shares(maps, data.truth.shortcut_masks_test[:n]).mean())
                entry[f"object_share_{name}"] = float(_shares(maps, data.truth.object_masks_test[:n]).mean())
        for entry in scores.values():
            entry["score"] = entry["shortcut_share_uses"] - entry["shortcut_share_ignores"]
        return {"pixels": scores, "skipped": skipped}

    @staticmethod
    def _shortcut_shows_class(data: Any) -> torch.Tensor:
        """Per test image: True where the shortcut's colour shows the image's class (flipping it changes pixels)."""
        truth = data.truth
        changed = (data.x_test != truth.x_test_flipped).any(1, keepdim=True)
        return (changed & truth.shortcut_masks_test).flatten(1).any(1)

    def _patching(self, seed: int) -> dict[str, Any]:
        """Position patching at ``conv2``: clean = a test image whose shortcut shows its class, corrupted = one of the
        other class (object, shortcut and distractor all differ); the share of restoration on the shortcut."""
        from explainer.inside.patching import patch

        out: dict[str, float] = {}
        for name, (run, data) in self._pair(seed).items():
            truth = data.truth
            agrees = self._shortcut_shows_class(data)
            per_class = max(1, self.settings.images // 4)
            chosen = [torch.nonzero(agrees & (data.y_test == c)).ravel()[:per_class] for c in (0, 1)]
            count = min(len(chosen[0]), len(chosen[1]))
            clean = torch.cat([data.x_test[chosen[0][:count]], data.x_test[chosen[1][:count]]])
            corrupted = torch.cat([data.x_test[chosen[1][:count]], data.x_test[chosen[0][:count]]])
            result = patch(self._classifier(run.model, data, seed), clean, corrupted, layers=PATCH_LAYER,
                           granularity="position", progress=False)
            site_map = np.clip(np.nan_to_num(result.site_map()), 0.0, None)
            grid = torch.nn.functional.adaptive_max_pool2d(truth.shortcut_masks_test[0].float(), site_map.shape)[0]
            total = float(site_map.sum())
            out[f"shortcut_share_{name}"] = float(site_map[grid.numpy() > 0].sum()) / total if total > 0 else 0.0
        out["score"] = out["shortcut_share_uses"] - out["shortcut_share_ignores"]
        return {"patching": out}

    def _concepts(self, seed: int) -> dict[str, Any]:
        """NMF concepts of ``conv2`` over test images whose shortcut shows their class: the share of the concepts'
        importance (mean logit drop when removed, negatives as 0) that sits on the shortcut, each concept weighted
        by the share of its heatmap mass inside the shortcut's cells."""
        from explainer.inside.concepts import _activations, concept_maps, concepts

        out: dict[str, float] = {}
        for name, (run, data) in self._pair(seed).items():
            truth = data.truth
            chosen = torch.nonzero(self._shortcut_shows_class(data)).ravel()[: self.settings.images]
            images, masks = data.x_test[chosen], truth.shortcut_masks_test[chosen].float()
            classifier = self._classifier(run.model, data, seed)
            with warnings.catch_warnings():  # NMF's max_iter warning on a tiny layer is not news here
                warnings.filterwarnings("ignore", message=".*Maximum number of iterations.*")
                found = concepts(classifier, images, layer=PATCH_LAYER, n_concepts=CONCEPTS, seed=seed)
                maps = concept_maps(found.directions, _activations(classifier, PATCH_LAYER, images))
            cells = torch.nn.functional.adaptive_max_pool2d(masks, maps.shape[-2:])
            on_shortcut = ((maps * cells).sum((0, 2, 3)) / maps.sum((0, 2, 3)).clamp_min(1e-12)).numpy()
            weights = np.clip([i.mean for i in found.importance], 0.0, None)
            out[f"shortcut_share_{name}"] = float((weights * on_shortcut).sum() / weights.sum()) if weights.sum() > 0 else 0.0
            out[f"best_alignment_{name}"] = float(on_shortcut.max())
        out["score"] = out["shortcut_share_uses"] - out["shortcut_share_ignores"]
        return {"concepts": out}

    def _data_kind(self, seed: int) -> dict[str, Any]:
        from explainer.learn.influence import find_mislabeled

        run, data = self._pair(seed)["uses"]
        search = find_mislabeled(run, data, data.truth.mislabeled, seed=seed)
        return {"data": search.precision, "k": search.k, "kind_seconds": search.seconds}

    def _timeline(self, seed: int) -> dict[str, Any]:
        s = self.settings
        run, data = self._net(seed, s.timeline_shortcut, s.timeline_epochs)
        n = s.images
        probe = self._classifier(_copy(run.model), data, seed)
        epochs = []
        for epoch, state in enumerate(run.checkpoints, start=1):
            probe.module.load_state_dict(state)
            point: dict[str, Any] = {"epoch": epoch, **shortcut_reliance(probe.module, data).to_dict()}
            for method in s.timeline_methods:
                maps = self._maps(probe, data.x_test[:n], method, seed)
                point[f"pixels:{method}"] = float(_shares(maps, data.truth.shortcut_masks_test[:n]).mean())
            epochs.append(point)
        return {"timeline": epochs}


def _copy(module: Any) -> Any:
    import copy

    return copy.deepcopy(module)


def make_worker(settings: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The work function for the runner (a picklable factory: ``functools.partial(make_worker, settings)``)."""
    return _Worker(_settings_from(settings))


def _settings_from(values: Mapping[str, Any]) -> PlantedSettings:
    fields = dict(values)
    for name in ("methods", "timeline_methods", "channels"):
        fields[name] = tuple(fields[name])
    return PlantedSettings(**fields)


# ------------------------------------------------------------------------------------------- report
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


# ------------------------------------------------------------------------------------------ estimate
@dataclass
class PlantedEstimate:
    """Seconds a benchmark is expected to take, per part, from timed passes on this machine."""

    seconds: float
    parts: dict[str, float]
    units: int
    how: str = "timed training steps and attribution passes of the planted CNN, times the work each unit does"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return json_ready(asdict(self))


def estimate_planted(settings: PlantedSettings, seeds: Sequence[int], *, timeline: bool = False,
                     done: Collection[str] = ()) -> PlantedEstimate:
    """Estimate the benchmark's seconds on this machine (one thread per unit, as the units run); units whose
    keys are in ``done`` (finished in a results file) cost nothing, but a resumed seed trains its networks again."""
    from explainer.attribution.estimate import estimate_cost
    from explainer.evidence.controls import is_control
    from explainer.learn.architectures import build_model
    from explainer.learn.training import fit

    data = _Worker(settings)._load(0, settings.shortcut)
    network = build_model("cnn", data, seed=0, channels=settings.channels, pool="each", hidden=settings.hidden)
    with _one_thread():
        fit(network, data, epochs=1, lr=settings.lr, batch_size=settings.batch_size, telemetry="off", device="cpu")
        started = time.perf_counter()  # the second epoch, warm
        fit(network, data, epochs=1, lr=settings.lr, batch_size=settings.batch_size, telemetry="off", device="cpu")
        epoch = time.perf_counter() - started
        classifier = _Worker._classifier(network, data, 0)
        pixels = data.x_test[: settings.images]
        attribution = 0.0
        for method in settings.methods:
            if not is_control(method):
                with contextlib.suppress(InputError):
                    attribution += estimate_cost(classifier, pixels, method).seconds
        with torch.inference_mode():
            started = time.perf_counter()
            network(pixels)
            forward = (time.perf_counter() - started) / len(pixels)  # seconds per image
            sites = capture(classifier, classifier.normalize(pixels[:1]), [PATCH_LAYER])[PATCH_LAYER][0, 0].numel()
    images = settings.images
    per_unit = {
        "reliance": 2 * 3 * settings.n_test * forward,
        "pixels": 2 * attribution,
        "data": epoch * settings.epochs,  # per-example gradients of the head at every checkpoint
        "patching": 2 * 2 * max(1, images // 4) * (sites + 2) * forward,  # pairs × (one forward per site)
        "concepts": 2 * images * (4 + CONCEPTS + 2) * forward + 2 * 0.1,  # crops, ablations; ~0.1 s per NMF
        "timeline": epoch * settings.timeline_epochs * 1.5,
    }
    remaining = [unit for unit in planted_units(seeds, timeline=timeline) if unit_key(unit) not in done]
    parts = {"training": 2 * epoch * settings.epochs * len({u["seed"] for u in remaining if u["kind"] != "timeline"})}
    for unit in remaining:
        parts[unit["kind"]] = parts.get(unit["kind"], 0.0) + per_unit[unit["kind"]]
    return PlantedEstimate(float(sum(parts.values())), parts, len(remaining))


def planted_units(seeds: Sequence[int], *, timeline: bool = False) -> list[dict[str, Any]]:
    """The benchmark's units in run order: seed by seed, each kind this installation scores (and the timeline)."""
    kinds = [*KINDS, *available_optional_kinds(), *(["timeline"] if timeline else [])]
    return [{"seed": seed, "kind": kind} for seed in seeds for kind in kinds]


# --------------------------------------------------------------------------------------------- entry
def available_optional_kinds() -> list[str]:
    """The optional kinds (patching) whose module is in this installation."""
    return [kind for kind in SCORED_OPTIONAL if importlib.util.find_spec(OPTIONAL_KINDS[kind]) is not None]


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise InputError(f"seeds must be a count or a list of seeds, got {seeds!r}.")
    if isinstance(seeds, int):
        if seeds < 1:
            raise InputError(f"seeds must be at least 1 (5 or more to name winners), got {seeds}.")
        return list(range(seeds))
    chosen = [int(s) for s in seeds]
    if not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise InputError(f"seeds must be distinct whole numbers ≥ 0, got {seeds!r}.")
    return chosen


def _methods(methods: Sequence[str] | None, quick: bool) -> tuple[str, ...]:
    from explainer.attribution.registry import list_methods
    from explainer.evidence.controls import is_control

    if methods is None:
        chosen = QUICK_METHODS if quick else tuple(m for m in list_methods() if m not in SKIPPED_BY_DEFAULT)
        return tuple(chosen) + CONTROLS
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    known = set(list_methods()) | set(CONTROLS)
    unknown = [m for m in methods if m not in known and not is_control(m)]
    if unknown:
        raise InputError(f"Unknown method(s) {', '.join(unknown)}; see explainer.list_methods() and the controls "
                         f"{', '.join(CONTROLS)}.")
    return tuple(dict.fromkeys([*methods, BASELINE_CONTROL]))


def _progress(progress: bool | ProgressCallback, total: int) -> tuple[Callable[[int, int, Any], None] | None, Any]:
    if progress is False:
        return None, None
    started = time.perf_counter()
    first: list[int] = []
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="planted", unit="unit", file=sys.stderr)

    def report(done: int, count: int, _row: Any) -> None:
        if not first:
            first.append(done - 1)
        fresh = done - first[0]
        left = (time.perf_counter() - started) / fresh * (count - done) if fresh > 0 else None
        if bar is not None:
            bar.update(done - bar.n)  # tqdm's own rate limit: resumed rows do not print a line each
        elif callable(progress):
            progress(done, count, left)

    return report, bar


def planted_benchmark(
    *,
    seeds: int | Sequence[int] = 5,
    methods: Sequence[str] | None = None,
    quick: bool = False,
    out: str | Path | None = None,
    backend: str = "local",
    address: str | None = None,
    timeline: bool = False,
    progress: bool | ProgressCallback = True,
    budget_seconds: float | None = None,
    settings: PlantedSettings | None = None,
) -> PlantedReport:
    """Score every kind of explanation against the planted truth over ``seeds`` (see the module docstring).

    ``methods``: attribution methods (default every registered method that applies, or a small set with
    ``quick``); the controls are always added. ``out``: a results file (JSONL) – a rerun with the same
    settings skips finished units. ``backend="ray"`` runs units on the Ray cluster at ``address``.
    ``progress``: a bar on stderr (True), nothing (False) or ``callback(done, total, seconds_left)``; the
    estimate is printed first when progress is shown. ``budget_seconds``: refuse (InputError) a run estimated
    to take longer.
    """
    chosen = _seeds(seeds)
    resolved = settings or (PlantedSettings.quick(_methods(methods, True)) if quick
                            else PlantedSettings(methods=_methods(methods, False)))
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or budget_seconds <= 0):
        raise InputError(f"budget_seconds must be a positive number of seconds, got {budget_seconds!r}.")
    units = planted_units(chosen, timeline=timeline)
    config = {"benchmark": "planted", **json_ready(asdict(resolved))}
    estimate = estimate_planted(resolved, chosen, timeline=timeline, done=finished_keys(out, units))
    if budget_seconds is not None and estimate.seconds > budget_seconds:
        raise InputError(f"The planted benchmark is estimated at {estimate.seconds:.0f} s, over budget_seconds="
                         f"{budget_seconds:g}. Use quick=True, fewer seeds or methods, or raise the budget.")
    if progress is not False:
        resumed = f", {len(units) - estimate.units} of {len(units)} units already in {out}" if estimate.units < len(units) else ""
        print(f"planted: estimated {estimate.seconds:.0f} s for {len(chosen)} seed(s){resumed} "
              f"({', '.join(f'{k} {v:.0f} s' for k, v in estimate.parts.items())})", file=sys.stderr)

    report_progress, bar = _progress(progress, len(units))
    started = time.perf_counter()
    try:
        rows = run_units(units, functools.partial(make_worker, asdict(resolved)), out=out, config=config,
                         backend=backend, address=address, resources={"num_cpus": 1} if backend == "ray" else None,
                         progress=report_progress)
    finally:
        if bar is not None:
            bar.close()
    return _report(rows, resolved, chosen, time.perf_counter() - started, estimate.seconds)


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


def open_planted(source: str | Path | bytes) -> PlantedReport:
    """The report card of a finished (or partial) planted results file, without running anything."""
    from explainer.run import read_results

    config, rows = read_results(source)
    if config.get("benchmark") != "planted":
        raise InputError(f"{source if not isinstance(source, bytes) else 'the upload'} is not a planted results file; "
                         "write one with `explainer planted --out results/planted.jsonl`.")
    settings = _settings_from({k: v for k, v in config.items() if k != "benchmark"})
    seeds = sorted({int(r["seed"]) for r in rows})
    seconds = float(sum(r.get("seconds", 0.0) + r.get("train_seconds", 0.0) for r in rows))
    return _report(rows, settings, seeds, seconds, None)
