"""``explainer.evaluate``: which attribution map can I trust for this model? – evidence over a dataset.

Every method and every control (:mod:`explainer.evidence.controls`) is scored on every image by the one
protocol of :mod:`explainer.evidence.metrics`; the result holds per-image rows, the mean of each method ×
metric with a 95 % bootstrap interval over images, paired comparisons between methods, flags where a
method does not beat the edge or brightness control, and a verdict in words that names a winner only
where the interval of the difference excludes zero.

Notebook use::

    import explainer
    model = explainer.load_model()
    result = explainer.evaluate(model, "samples", methods=["gradcam", "integrated_gradients"])
    print(result.verdict())
    result.to_dict()        # {"summary": [...], "comparisons": [...], "flags": [...], "verdict": ..., "config": ...}

Scale: a unit of work is one image (every method and control of it together, so their perturbed
curves share forward passes); units run through :func:`explainer.run.run_units`, so ``out=FILE`` writes
rows as they finish and a rerun resumes, and ``backend="ray"`` runs them on an existing Ray cluster
(one worker per slot loads the model once). A row depends only on its image index, the settings and
``seed`` (seeded generators, never the global RNG), so the local and Ray rows are equal.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from explainer._plumbing import json_ready
from explainer.errors import InputError
from explainer.evidence import metrics as M
from explainer.evidence.controls import CONTROLS, control_maps, is_control
from explainer.evidence.precision import CHECK_IMAGES, Precision, fast_forward, resolve_precision
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

#: Metrics computed by default (mask metrics only where the data have masks).
DEFAULT_METRICS = tuple(M.METRICS)
#: Data names besides load_dataset's: the bundled sample photos.
SAMPLE_PHOTOS = "samples"

ProgressCallback = Callable[[int, int, "float | None"], None]


# ------------------------------------------------------------------------------------ data
@dataclass
class EvaluationData:
    """Images to evaluate as pixels ``(N, C, H, W)`` in [0, 1] at the model's input size, with what is known."""

    pixels: torch.Tensor
    names: list[str]
    labels: list[int] | None = None
    masks: torch.Tensor | None = None  # bool (N, 1, H, W)
    description: str = "images"


def load_evaluation_data(data: Any, classifier: Any, limit: int | None = None) -> EvaluationData:
    """``data`` (paths/images, a Dataset, a dataset name, ``"samples"``, a DataLoader) as pixels for ``classifier``.

    Datasets give their test split with labels (and masks for ``known_answer``); ``limit`` keeps the first
    ``limit`` images.
    """
    from explainer.data.datasets import Dataset, load_dataset

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}.")
    if isinstance(data, str) and data == SAMPLE_PHOTOS:
        from explainer.data.images import sample_images

        photos = sample_images()
        names = list(photos)[:limit]
        return EvaluationData(classifier.to_pixels([photos[n] for n in names]), names, description="sample photos")
    if isinstance(data, str) and (data in _dataset_names() or data.startswith("imagefolder:")):
        data = load_dataset(data)
    if isinstance(data, Dataset):
        if not data.is_image:
            raise InputError(f"{data.name} holds 2-D points, not images; attribution maps need images.")
        x, y = data.x_test[:limit], data.y_test[:limit]
        masks = data.masks_test[:limit] if data.masks_test is not None else None
        return _from_tensors(x, y, masks, classifier, f"{data.name} test split", prefix=data.name)
    if isinstance(data, torch.utils.data.DataLoader):
        xs, ys = [], []
        for batch in data:
            if isinstance(batch, (list, tuple)):
                xs.append(torch.as_tensor(batch[0]))
                ys.append(torch.as_tensor(batch[1]))
            else:
                xs.append(torch.as_tensor(batch))
            if limit is not None and sum(len(t) for t in xs) >= limit:
                break
        if not xs:
            raise InputError("The DataLoader yielded no batches.")
        labels = torch.cat(ys)[:limit] if ys else None
        return _from_tensors(torch.cat(xs)[:limit], labels, None, classifier, "DataLoader", prefix="batch")
    if isinstance(data, torch.Tensor):
        pixels = classifier.to_pixels(data)[:limit]
        return EvaluationData(pixels, [f"image {i}" for i in range(len(pixels))])
    items = [data] if isinstance(data, str) else list(data)
    if not items:
        raise InputError("No images given; pass image paths, a dataset name such as 'digits', or a Dataset.")
    items = items[:limit]
    tensors = [item for item in items if isinstance(item, torch.Tensor)]
    if len(tensors) == len(items):  # pixel tensors (C, H, W) or (1, C, H, W)
        pixels = classifier.to_pixels(torch.cat([item.reshape(-1, *item.shape[-3:]) for item in tensors]))
        return EvaluationData(pixels, [f"image {i}" for i in range(len(pixels))])
    return EvaluationData(classifier.to_pixels(items), [str(item) if isinstance(item, str) else f"image {i}"
                                                        for i, item in enumerate(items)])


def _dataset_names() -> tuple[str, ...]:
    from explainer.data.datasets import IMAGE_SETS, TOY_SETS

    return IMAGE_SETS + TOY_SETS


def _from_tensors(x: torch.Tensor, y: torch.Tensor | None, masks: torch.Tensor | None, classifier: Any,
                  description: str, prefix: str) -> EvaluationData:
    pixels = classifier.to_pixels(x.float())
    if masks is not None and tuple(masks.shape[-2:]) != tuple(pixels.shape[-2:]):
        warnings.warn(f"The masks are {tuple(masks.shape[-2:])} but the model's input is {tuple(pixels.shape[-2:])}; "
                      "mask metrics are left out.", stacklevel=3)
        masks = None
    labels = [int(v) for v in y] if y is not None else None
    return EvaluationData(pixels, [f"{prefix}[{i}]" for i in range(len(pixels))], labels,
                          masks.bool() if masks is not None else None, description)


# ---------------------------------------------------------------------------------- worker
@dataclass(frozen=True)
class Settings:
    """What every unit needs besides its image: methods, their parameters, metrics and protocol."""

    methods: tuple[str, ...]  # methods and controls
    params: Mapping[str, Mapping[str, Any]]
    metrics: tuple[str, ...]
    steps: int
    baseline: str
    road_noise: float
    randomization_steps: int
    seed: int
    targets: str | tuple[int, ...] | None  # None: predicted, "labels", or one per image
    batch_size: int | None
    memory_budget_mb: float | None
    precision: Precision | None = None  # how the perturbed forwards run (None: the module in fp32)
    insertion_blur: str = "rise"  # the insertion canvas (metrics.INSERTION_BLURS)
    randomization_copies: int = M.RANDOMIZATION_COPIES  # independently randomized copies (seeds differ)


def unit_seed(seed: int, image: int) -> int:
    """The seed of image ``image``'s generators (tie order, random control, ROAD noise)."""
    return int(seed) * 1_000_003 + int(image)


def make_worker(model: Any, data: Any, limit: int | None, settings: Settings, device: str | None = None
                ) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The worker factory's body: load the model and data once, return ``work(unit) -> row``.

    ``model`` is a Classifier or a model source for :func:`explainer.load_model`; ``data`` anything
    :func:`load_evaluation_data` takes (a dataset name is loaded here, in the worker).
    """
    from explainer.models import Classifier, load_model

    classifier = model if isinstance(model, Classifier) else load_model(model, device=device)
    if device is not None and isinstance(model, Classifier) and torch.device(device) != classifier.device:
        import copy

        classifier = copy.deepcopy(model).to(device)
    loaded = data if isinstance(data, EvaluationData) else load_evaluation_data(data, classifier, limit)
    cascades: list[list[M.CascadeStep]] = []
    forward = fast_forward(classifier, settings.precision) if settings.precision else None

    def work(unit: Mapping[str, Any]) -> dict[str, Any]:
        if "randomization" in settings.metrics and not cascades:
            cascades.extend(randomized_copies(classifier, settings))
        return score_image(classifier, loaded, int(unit["image"]), settings, cascades, forward)

    return work


def randomized_copies(classifier: Any, settings: Settings) -> list[list[M.CascadeStep]]:
    """``settings.randomization_copies`` cascades of independently randomized copies (seeds ``seed * 1000 + k``)."""
    copies = settings.randomization_copies
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 2:
        raise InputError(f"randomization_copies must be an integer ≥ 2 (the null compares two copies; use ≥ 3 so "
                         f"intervals carry re-initialisation variance), got {copies!r}.")
    return [M.randomized_cascade(classifier, settings.randomization_steps, settings.seed * 1000 + k)
            for k in range(copies)]


def score_image(classifier: Any, data: EvaluationData, index: int, settings: Settings,
                cascades: Sequence[Sequence[M.CascadeStep]],
                forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, Any]:
    """One row: every method and control of image ``index`` scored by the protocol.

    Randomization: image ``index`` uses copy ``index % copies``; its null is the same method's map on that
    copy against the map on copy ``(index + 1) % copies`` (both fully randomized).
    """
    from explainer.attribution.explanation import explain

    if not 0 <= index < len(data.pixels):
        raise InputError(f"image index {index} is out of range for {len(data.pixels)} images.")
    pixels = data.pixels[index : index + 1]
    inputs = classifier.normalize(pixels).to(classifier.device)
    target = _target(classifier, inputs, data, index, settings.targets)
    seed = unit_seed(settings.seed, index)
    maps, positive, per_method = [], [], {}
    for name in settings.methods:
        if is_control(name):
            maps.append(control_maps(name, pixels, [seed]))
            positive.append(maps[-1])
            continue

        def explain_on(model: Any, _name: str = name) -> torch.Tensor:
            return explain(model, pixels, _name, [target], budget_seconds=None,
                           memory_budget_mb=settings.memory_budget_mb,
                           **dict(settings.params.get(_name, {}))).heatmap(absolute=True)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty-map warnings: the metrics say so per image
            explanation = explain(classifier, pixels, name, [target], budget_seconds=None,
                                  memory_budget_mb=settings.memory_budget_mb, **dict(settings.params.get(name, {})))
        maps.append(explanation.heatmap(absolute=True))
        # the pointing game looks for the maximum of the positive evidence (signed maps: the positive part)
        positive.append(explanation.heatmap().clamp_min(0) if explanation.spec.signed else maps[-1])
        per_method[name] = explain_on
    relevance = torch.stack(maps)  # (M, 1, H, W)
    curves = [c for c in M.CURVES if c in settings.metrics]
    fractions, values = (M.perturbation_curves(
        classifier, inputs, relevance, [target], curves=curves, steps=settings.steps, baseline=settings.baseline,
        road_noise=settings.road_noise, tie_seeds=[seed], batch_size=settings.batch_size,
        memory_budget_mb=settings.memory_budget_mb, forward=forward, insertion_blur=settings.insertion_blur,
    ) if curves else (np.zeros(0), {}))
    scores: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, dict[str, str]] = {}
    row_curves: dict[str, dict[str, list[float]]] = {}
    cascade_rows: dict[str, list[dict[str, Any]]] = {}
    nulls: dict[str, float] = {}
    for m, name in enumerate(settings.methods):
        score: dict[str, float | None] = {}
        why: dict[str, str | None] = {}
        for curve in curves:
            score[curve] = float(M.area_under_curve(fractions, values[curve][m, 0]))
        row_curves[name] = {curve: [float(v) for v in values[curve][m, 0]] for curve in curves}
        heat = relevance[m]
        if "sparseness" in settings.metrics:
            value, reason = M.gini(heat)
            score["sparseness"], why["sparseness"] = float(value[0]), reason[0]
        if data.masks is not None:
            mask = data.masks[index : index + 1]
            if "mask_share" in settings.metrics:
                value, reason = M.mask_share_values(heat, mask)
                score["mask_share"], why["mask_share"] = float(value[0]), reason[0]
            if "pointing_game" in settings.metrics:
                score["pointing_game"] = float(M.pointing_game(positive[m], mask)[0])
        if "randomization" in settings.metrics:
            rerun = per_method.get(name)
            if rerun is None:
                score["randomization"], why["randomization"] = None, CONTROL_RANDOMIZATION
            else:
                copy = index % len(cascades)
                steps, last = _cascade(heat, pixels, cascades[copy], rerun)
                cascade_rows[name] = steps
                score["randomization"], why["randomization"] = steps[-1]["similarity"], steps[-1]["reason"]
                nulls[name] = _null(last, pixels, cascades[(copy + 1) % len(cascades)][-1], rerun)
        scores[name] = score
        reasons[name] = {k: v for k, v in why.items() if v}
    return json_ready({
        "name": data.names[index],
        "target": target,
        "label": classifier.labels[target],
        "true_label": None if data.labels is None else int(data.labels[index]),
        "scores": scores,
        "reasons": reasons,
        "curves": row_curves,
        "randomization": cascade_rows,
        "randomization_null": nulls,
    })


def _target(classifier: Any, inputs: torch.Tensor, data: EvaluationData, index: int, targets: Any) -> int:
    if targets == "labels":
        if data.labels is None:
            raise InputError("targets='labels' needs data with labels (a Dataset or a dataset name).")
        return int(data.labels[index])
    if isinstance(targets, (list, tuple)):
        return classifier.class_index(targets[index])
    from explainer._plumbing import eval_mode

    with eval_mode(classifier.module), torch.inference_mode():
        return int(classifier.module(inputs).argmax(dim=1)[0])


#: A control's reason for no randomization score: its map does not depend on the weights.
CONTROL_RANDOMIZATION = "not applicable: a control's map does not depend on the weights"
#: The name the randomization null takes in comparisons.
NULL = "null:two randomized copies"


def _cascade(heat: torch.Tensor, pixels: torch.Tensor, cascade: Sequence[M.CascadeStep],
             explain_on: Callable[[Any], torch.Tensor]) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Similarity to the map on each step of one randomized copy, and the map after the last step."""
    steps = []
    masks = M.foreground_mask(pixels)
    again = heat
    for step in cascade:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = explain_on(step.classifier)
        value, reason = M.map_similarity(heat[0], again[0], masks[0])
        steps.append({"step": step.name, "similarity": float(value), "reason": reason})
    return steps, again


def _null(randomized: torch.Tensor, pixels: torch.Tensor, other: M.CascadeStep,
          explain_on: Callable[[Any], torch.Tensor]) -> float:
    """The null of the randomization metric: similarity of the maps on two independently randomized copies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = explain_on(other.classifier)
    return float(M.map_similarity(randomized[0], again[0], M.foreground_mask(pixels)[0])[0])


# ------------------------------------------------------------------------------ the result
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


# -------------------------------------------------------------------------------- estimate
@dataclass(frozen=True)
class EvaluationEstimate:
    """Predicted seconds of an evaluation, from a timed run of the protocol on the first image."""

    seconds: float
    images: int
    seconds_per_image: float
    parts: dict[str, float]

    def text(self) -> str:
        """One line: the estimate and what it is made of."""
        total = self.seconds
        shown = f"{total:.0f} s" if total < 90 else f"{total / 60:.1f} min"
        parts = ", ".join(f"{k} {v:.2g} s" for k, v in self.parts.items())
        return f"≈ {shown} for {self.images} image(s) ({self.seconds_per_image:.2g} s per image: {parts})"


def estimate_evaluation(classifier: Any, data: EvaluationData, settings: Settings,
                        images: int | None = None) -> EvaluationEstimate:
    """Time the protocol's pieces on the first image and scale to every image – or to ``images`` of them (the
    ones a resumed results file still lacks); runs one curve set and one explanation per method."""
    from explainer.attribution.explanation import explain

    pixels = data.pixels[:1]
    inputs = classifier.normalize(pixels).to(classifier.device)
    target = _target(classifier, inputs, data, 0, settings.targets)
    curves = [c for c in M.CURVES if c in settings.metrics]
    parts: dict[str, float] = {}

    def timed(job: Callable[[], Any]) -> float:  # the second of two runs: the first warms caches and imports
        job()
        started = time.perf_counter()
        job()
        return time.perf_counter() - started

    forward = fast_forward(classifier, settings.precision) if settings.precision else None
    if curves:
        probe = control_maps("control:random", pixels, [0]).unsqueeze(0)
        parts["curves"] = len(settings.methods) * timed(lambda: M.perturbation_curves(
            classifier, inputs, probe, [target], curves=curves, steps=settings.steps, baseline=settings.baseline,
            batch_size=settings.batch_size, memory_budget_mb=settings.memory_budget_mb, forward=forward))
    explain_seconds = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in settings.methods:
            if not is_control(name):
                explain_seconds += timed(functools.partial(
                    explain, classifier, pixels, name, [target], budget_seconds=None,
                    memory_budget_mb=settings.memory_budget_mb, **dict(settings.params.get(name, {}))))
    parts["explain"] = explain_seconds
    if "randomization" in settings.metrics:
        parts["randomization"] = explain_seconds * settings.randomization_steps
    per_image = sum(parts.values())
    count = len(data.pixels) if images is None else int(images)
    return EvaluationEstimate(per_image * count, count, per_image, parts)


# ------------------------------------------------------------------------------- evaluate
def _methods(methods: Sequence[str] | str, controls: bool) -> tuple[str, ...]:
    from explainer.attribution.registry import get_method

    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise InputError("methods is empty; name at least one, e.g. methods=['gradcam'].")
    for name in names:
        if not is_control(name):
            get_method(name)
        elif name not in CONTROLS:
            raise InputError(f"Unknown control {name!r}; choose from: {', '.join(CONTROLS)}.")
    if controls:
        names += [c for c in CONTROLS if c not in names]
    if len(set(names)) != len(names):
        raise InputError(f"A method is named twice in {names}.")
    return tuple(names)


def _metric_names(metrics: Sequence[str] | str | None, has_masks: bool) -> tuple[str, ...]:
    if metrics is None:
        names = [m for m in DEFAULT_METRICS if has_masks or not M.METRICS[m].needs_masks]
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        for name in names:
            M.metric(name)
            if M.METRICS[name].needs_masks and not has_masks:
                raise InputError(f"{name} needs ground-truth masks; use data with masks such as 'known_answer'.")
    return tuple(names)


def evaluate(
    classifier: Any,
    data: Any,
    *,
    methods: Sequence[str] | str,
    metrics: Sequence[str] | str | None = None,
    controls: bool = True,
    limit: int | None = None,
    targets: str | Sequence[int | str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    steps: int = M.DEFAULT_STEPS,
    baseline: str = "zero",
    randomization_steps: int = M.RANDOMIZATION_STEPS,
    batch_size: int | None = None,
    memory_budget_mb: float | None = None,
    device: str | None = None,
    out: str | None = None,
    backend: str = "local",
    address: str | None = None,
    seed: int = 0,
    progress: bool | ProgressCallback = True,
    estimate: bool = False,
    precision: str = "fp32",
    compile: bool = False,
    budget_seconds: float | None = None,
    insertion_blur: str = "rise",
    randomization_copies: int = M.RANDOMIZATION_COPIES,
) -> Evaluation:
    """Score ``methods`` (and the controls) on every image of ``data`` with the one protocol.

    ``classifier``: a Classifier, or a model source for :func:`explainer.load_model` (what Ray workers
    load). ``data``: image paths or images, a :class:`explainer.Dataset` (its test split), a dataset name
    (``"digits"``, ``"known_answer"``, ``"imagefolder:PATH"``), ``"samples"`` (the bundled photos) or a
    DataLoader. ``metrics``: names from :data:`explainer.evidence.metrics.METRICS` (default all; mask
    metrics where the data have masks). ``targets``: None (each image's predicted class), ``"labels"``
    or one per image. ``params``: method → parameters. ``out``: a results file (JSON lines; a rerun with
    the same settings resumes). ``backend``: ``"local"`` or ``"ray"`` (``address`` of an existing cluster,
    default ``"auto"``). ``progress``: the estimate, then a tqdm bar on stderr (True, the default), silence
    (False) or ``callback(done, total, seconds_left)``. ``estimate=True`` (implied by a shown progress or a
    budget) times the first image before the run and stores the prediction in ``Evaluation.estimate_seconds``;
    ``budget_seconds`` refuses (InputError with what to shrink) a run estimated above it.
    ``insertion_blur``: ``"rise"`` (default) or ``"sigma20"``; ``randomization_copies``: independently
    randomized copies of the model (≥ 3 by default, so intervals carry re-initialisation variance). ``precision`` (``"fp32"``,
    ``"bf16"``, ``"auto"``) and ``compile``: how the perturbed forwards of the curves run
    (:mod:`explainer.evidence.precision`; recorded in ``config["precision"]``).
    """
    from explainer.models import Classifier, load_model
    from explainer.run import finished_keys, run_units

    model = classifier if isinstance(classifier, Classifier) else load_model(classifier, device=device)
    loaded = load_evaluation_data(data, model, limit)
    names = _methods(methods, controls)
    settings = Settings(
        methods=names,
        params={k: dict(v) for k, v in (params or {}).items()},
        metrics=_metric_names(metrics, loaded.masks is not None),
        steps=steps, baseline=M.baseline_name(baseline), road_noise=M.ROAD_NOISE,
        randomization_steps=randomization_steps, seed=int(seed),
        targets=tuple(targets) if isinstance(targets, (list, tuple)) else targets,  # type: ignore[arg-type]
        batch_size=batch_size, memory_budget_mb=memory_budget_mb,
        precision=resolve_precision(model, precision, compile=compile,
                                    probe=model.normalize(loaded.pixels[:CHECK_IMAGES])),
        insertion_blur=insertion_blur, randomization_copies=randomization_copies,
    )
    if insertion_blur not in M.INSERTION_BLURS:
        raise InputError(f"insertion_blur={insertion_blur!r} is not known; choose one of: {', '.join(M.INSERTION_BLURS)}.")
    if "randomization" in settings.metrics and (isinstance(randomization_copies, bool)
                                                or not isinstance(randomization_copies, int) or randomization_copies < 2):
        raise InputError(f"randomization_copies must be an integer ≥ 2 (3 or more recommended), got {randomization_copies!r}.")
    _check_budget(budget_seconds)
    M.step_counts(4, steps)  # validates steps
    if targets not in (None, "labels") and not isinstance(targets, (list, tuple)):
        raise InputError(f"targets must be None (predicted), 'labels' or one per image, got {targets!r}.")
    config = _config(model, classifier, data, loaded, settings, limit)
    predicted = None
    units = [{"image": i} for i in range(len(loaded.pixels))]
    left = len(units) - len(finished_keys(out, units))  # a resumed results file: only its missing images cost time
    if not left and estimate:
        predicted = 0.0
    if left and (estimate or progress is not False or budget_seconds is not None):
        forecast = estimate_evaluation(model, loaded, settings, images=left)
        predicted = forecast.seconds
        if budget_seconds is not None and forecast.seconds > budget_seconds:
            raise InputError(f"This evaluation is estimated at {forecast.text()} – over the time budget of "
                             f"{budget_seconds:g} s. Use fewer images (limit=), fewer methods or metrics (leaving out "
                             "randomization saves the most), fewer steps or randomization_steps, or pass "
                             "budget_seconds=None (no limit; --budget 0 on the command line) or a larger budget.")
        if progress is not False:
            resumed = f" ({len(units) - left} of {len(units)} already in {out})" if left < len(units) else ""
            print(f"estimate: {forecast.text()}{resumed}", file=sys.stderr)
    worker_data = data if isinstance(data, str) else loaded
    worker_model = classifier if isinstance(classifier, str) else model
    factory = functools.partial(make_worker, worker_model, worker_data, limit, settings, device)
    started = time.perf_counter()
    resources = {"num_cpus": 1, "num_gpus": 1 if model.device.type == "cuda" else 0}
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(units), desc="evaluate", unit="image", file=sys.stderr)
    try:
        rows = run_units(units, factory, out=out, config=config, backend=backend, address=address,
                         resources=resources if backend == "ray" else None,
                         progress=_progress(progress if callable(progress) else bar, started))
    finally:
        if bar is not None:
            bar.close()
    return Evaluation(rows, list(names), list(settings.metrics), config, time.perf_counter() - started, predicted)


def _check_budget(budget_seconds: float | None) -> None:
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds or None (no limit), got {budget_seconds!r}.")


def _progress(callback: Any, started: float) -> Callable[[int, int, Any], None] | None:
    """The runner's progress hook: a tqdm bar (moved to ``done``), a callback, or None."""
    if callback is None or callback is False:
        return None
    if not callable(callback):  # a tqdm bar
        bar = callback

        def advance(done: int, total: int, _row: Any) -> None:
            bar.n = done
            bar.refresh()

        return advance
    first: list[int] = []

    def report(done: int, total: int, _row: Any) -> None:
        if not first:
            first.append(done - 1)  # rows already in the file cost nothing
        fresh = done - first[0]
        elapsed = time.perf_counter() - started
        left = elapsed / fresh * (total - done) if fresh > 0 else None
        callback(done, total, left)

    return report


def _config(model: Any, source: Any, data: Any, loaded: EvaluationData, settings: Settings, limit: int | None
            ) -> dict[str, Any]:
    return json_ready({
        "kind": "evaluation",
        "model": model.name if not isinstance(source, str) else source,
        "data": data if isinstance(data, str) else loaded.description,
        "images": len(loaded.pixels),
        "limit": limit,
        "methods": list(settings.methods),
        "params": {k: dict(v) for k, v in settings.params.items()},
        "metrics": list(settings.metrics),
        "steps": settings.steps,
        "baseline": settings.baseline,
        "randomization_steps": settings.randomization_steps,
        "targets": settings.targets if settings.targets is None or isinstance(settings.targets, str) else list(settings.targets),
        "seed": settings.seed,
        "precision": settings.precision.to_dict() if settings.precision else None,
        "insertion_blur": settings.insertion_blur,
        "randomization_copies": settings.randomization_copies,
        "protocol": M.protocol_description(settings.steps, settings.baseline, settings.road_noise,
                                           settings.randomization_steps, settings.insertion_blur,
                                           settings.randomization_copies),
    })


# ---------------------------------------------------------------------------- small models
#: Model sources of the form ``train:ARCH`` train ARCH on the data's train split (see trained_classifier).
TRAIN_PREFIX = "train:"


def trained_classifier(arch: str, dataset: Any, *, seed: int = 0, epochs: int = 20,
                       target_accuracy: float | None = 0.97) -> Any:
    """A small network (``"cnn"``, ``"mlp"`` or a timm name) trained on ``dataset``'s train split, as a Classifier.

    For the CLI's ``--model train:cnn`` and for notebooks: the digits CNN trains to ≥ 97 % in seconds on a
    CPU. Training is seeded; the returned Classifier is what the evaluation (and its Ray workers) use.
    """
    from explainer.data.datasets import Dataset, load_dataset
    from explainer.learn.architectures import build_model
    from explainer.learn.training import fit
    from explainer.models import Classifier

    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if not data.is_image:
        raise InputError(f"{data.name} holds 2-D points, not images; attribution maps need images.")
    network = build_model(arch, data, seed=seed)
    fit(network, data, epochs=epochs, target_accuracy=target_accuracy, seed=seed, device="cpu")
    channels, height, width = data.input_shape
    return Classifier.from_module(network.eval(), labels=data.class_names, input_size=(height, width),
                                  in_chans=channels, name=f"{arch} ({data.name}, seed {seed})")
