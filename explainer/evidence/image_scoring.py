"""The worker of :func:`explainer.evaluate`: one image's row – every method and control scored by the protocol."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from explainer.data.evaluation_data import EvaluationData, load_evaluation_data
from explainer.errors import InputError
from explainer.evidence import metrics as M
from explainer.evidence.controls import control_maps, is_control
from explainer.evidence.curves import area_under_curve, perturbation_curves
from explainer.evidence.precision import Precision, fast_forward
from explainer.evidence.randomization import CascadeStep, randomized_cascade
from explainer.jsonable import json_ready

if TYPE_CHECKING:
    from explainer.models import Classifier


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


def randomized_copies(classifier: Classifier, settings: Settings) -> list[list[CascadeStep]]:
    """``settings.randomization_copies`` cascades of independently randomized copies (seeds ``seed * 1000 + k``)."""
    copies = settings.randomization_copies
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 2:
        raise InputError(f"randomization_copies must be an integer ≥ 2 (the null compares two copies; use ≥ 3 so "
                         f"intervals carry re-initialisation variance), got {copies!r}.")
    return [randomized_cascade(classifier, settings.randomization_steps, settings.seed * 1000 + k)
            for k in range(copies)]


def score_image(classifier: Classifier, data: EvaluationData, index: int, settings: Settings,
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
    mask = None if data.masks is None else data.masks[index : index + 1]
    copy = index % len(cascades) if cascades else 0
    scores: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, dict[str, str]] = {}
    row_curves: dict[str, dict[str, list[float]]] = {}
    details: dict[str, dict[str, Any]] = {"randomization": {}, "randomization_null": {}}
    for m, name in enumerate(settings.methods):
        map_inputs = M.MapInputs(
            heat=relevance[m], positive=positive[m], pixels=pixels, mask=mask,
            areas={curve: float(area_under_curve(fractions, values[curve][m, 0])) for curve in curves},
            explain_on=per_method.get(name),
            cascade=cascades[copy] if cascades else (),
            other_copy=cascades[(copy + 1) % len(cascades)][-1] if cascades else None)
        row_curves[name] = {curve: [float(v) for v in values[curve][m, 0]] for curve in curves}
        score: dict[str, float | None] = {}
        why: dict[str, str] = {}
        for metric_name in settings.metrics:
            spec = M.METRICS[metric_name]
            if spec.needs_masks and mask is None:
                continue
            scored = spec.score(map_inputs)
            score[metric_name] = scored.value
            if scored.reason:
                why[metric_name] = scored.reason
            for key, value in (scored.details or {}).items():
                details.setdefault(key, {})[name] = value
        scores[name] = score
        reasons[name] = why
    return json_ready({
        "name": data.names[index],
        "target": target,
        "label": classifier.labels[target],
        "true_label": None if data.labels is None else int(data.labels[index]),
        "scores": scores,
        "reasons": reasons,
        "curves": row_curves,
        **details,
    })


def _target(classifier: Classifier, inputs: torch.Tensor, data: EvaluationData, index: int, targets: Any) -> int:
    if targets == "labels":
        if data.labels is None:
            raise InputError("targets='labels' needs data with labels (a Dataset or a dataset name).")
        return int(data.labels[index])
    if isinstance(targets, (list, tuple)):
        return classifier.class_index(targets[index])
    from explainer.guards import eval_mode

    with eval_mode(classifier.module), torch.inference_mode():
        return int(classifier.module(inputs).argmax(dim=1)[0])
