"""The worker of :func:`explainer.evaluate`: one image's row – every method and control scored by the protocol."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from explainer.data.evaluation_data import EvaluationData, load_evaluation_data
from explainer.errors import InputError
from explainer.evidence import metrics as M
from explainer.evidence.controls import control_maps, is_control
from explainer.evidence.curves import area_under_curve, perturbation_curves
from explainer.evidence.map_scores import gini, mask_share_values, pointing_game
from explainer.evidence.precision import Precision, fast_forward
from explainer.evidence.randomization import CascadeStep, foreground_mask, map_similarity, randomized_cascade
from explainer.jsonable import json_ready


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
    cascades: list[list[CascadeStep]] = []
    forward = fast_forward(classifier, settings.precision) if settings.precision else None

    def work(unit: Mapping[str, Any]) -> dict[str, Any]:
        if "randomization" in settings.metrics and not cascades:
            cascades.extend(randomized_copies(classifier, settings))
        return score_image(classifier, loaded, int(unit["image"]), settings, cascades, forward)

    return work


def randomized_copies(classifier: Any, settings: Settings) -> list[list[CascadeStep]]:
    """``settings.randomization_copies`` cascades of independently randomized copies (seeds ``seed * 1000 + k``)."""
    copies = settings.randomization_copies
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 2:
        raise InputError(f"randomization_copies must be an integer ≥ 2 (the null compares two copies; use ≥ 3 so "
                         f"intervals carry re-initialisation variance), got {copies!r}.")
    return [randomized_cascade(classifier, settings.randomization_steps, settings.seed * 1000 + k)
            for k in range(copies)]


def score_image(classifier: Any, data: EvaluationData, index: int, settings: Settings,
                cascades: Sequence[Sequence[CascadeStep]],
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
    fractions, values = (perturbation_curves(
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
            score[curve] = float(area_under_curve(fractions, values[curve][m, 0]))
        row_curves[name] = {curve: [float(v) for v in values[curve][m, 0]] for curve in curves}
        heat = relevance[m]
        if "sparseness" in settings.metrics:
            value, reason = gini(heat)
            score["sparseness"], why["sparseness"] = float(value[0]), reason[0]
        if data.masks is not None:
            mask = data.masks[index : index + 1]
            if "mask_share" in settings.metrics:
                value, reason = mask_share_values(heat, mask)
                score["mask_share"], why["mask_share"] = float(value[0]), reason[0]
            if "pointing_game" in settings.metrics:
                score["pointing_game"] = float(pointing_game(positive[m], mask)[0])
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
    from explainer.guards import eval_mode

    with eval_mode(classifier.module), torch.inference_mode():
        return int(classifier.module(inputs).argmax(dim=1)[0])


#: A control's reason for no randomization score: its map does not depend on the weights.
CONTROL_RANDOMIZATION = "not applicable: a control's map does not depend on the weights"


def _cascade(heat: torch.Tensor, pixels: torch.Tensor, cascade: Sequence[CascadeStep],
             explain_on: Callable[[Any], torch.Tensor]) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Similarity to the map on each step of one randomized copy, and the map after the last step."""
    steps = []
    masks = foreground_mask(pixels)
    again = heat
    for step in cascade:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = explain_on(step.classifier)
        value, reason = map_similarity(heat[0], again[0], masks[0])
        steps.append({"step": step.name, "similarity": float(value), "reason": reason})
    return steps, again


def _null(randomized: torch.Tensor, pixels: torch.Tensor, other: CascadeStep,
          explain_on: Callable[[Any], torch.Tensor]) -> float:
    """The null of the randomization metric: similarity of the maps on two independently randomized copies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = explain_on(other.classifier)
    return float(map_similarity(randomized[0], again[0], foreground_mask(pixels)[0])[0])
