"""How long a planted benchmark takes: training steps and attribution passes timed here, times each unit's work."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from explainer.errors import InputError
from explainer.evidence.planted_settings import CONCEPTS, PATCH_LAYER, PlantedSettings, planted_units
from explainer.evidence.planted_worker import _one_thread, _Worker
from explainer.inside.activations import capture
from explainer.jsonable import json_ready
from explainer.run import unit_key


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
