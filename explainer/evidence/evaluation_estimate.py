"""How long an evaluation takes: the protocol's pieces timed on the first image, scaled to every image."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explainer.data.evaluation_data import EvaluationData
from explainer.evidence import metrics as M
from explainer.evidence.controls import control_maps, is_control
from explainer.evidence.curves import perturbation_curves
from explainer.evidence.image_scoring import Settings, _target
from explainer.evidence.precision import fast_forward
from explainer.run.long_call import duration

if TYPE_CHECKING:
    from explainer.models import Classifier


@dataclass(frozen=True)
class EvaluationEstimate:
    """Predicted seconds of an evaluation, from a timed run of the protocol on the first image."""

    seconds: float
    images: int
    seconds_per_image: float
    parts: dict[str, float]

    def text(self) -> str:
        """One line: the estimate and what it is made of."""
        parts = ", ".join(f"{k} {v:.2g} s" for k, v in self.parts.items())
        return f"≈ {duration(self.seconds)} for {self.images} image(s) ({self.seconds_per_image:.2g} s per image: {parts})"


def estimate_evaluation(classifier: Classifier, data: EvaluationData, settings: Settings,
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
        parts["curves"] = len(settings.methods) * timed(lambda: perturbation_curves(
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
