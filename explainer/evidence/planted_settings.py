"""What a planted benchmark runs: its settings, the kinds of explanation it scores and its units (seed × kind)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from explainer.evidence.controls import CONTROLS as CONTROL_SPECS

KINDS = ("reliance", "pixels", "data")
OPTIONAL_KINDS = {"patching": "explainer.inside.patching", "concepts": "explainer.inside.concepts"}
#: The optional kinds the benchmark scores when their module is there.
SCORED_OPTIONAL = ("patching", "concepts")
QUICK_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "gradcam")
CONTROLS = tuple(CONTROL_SPECS)  # every control map, in their registry's order
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


def _settings_from(values: Mapping[str, Any]) -> PlantedSettings:
    fields = dict(values)
    for name in ("methods", "timeline_methods", "channels"):
        fields[name] = tuple(fields[name])
    return PlantedSettings(**fields)


def available_optional_kinds() -> list[str]:
    """The optional kinds (patching) whose module is in this installation."""
    return [kind for kind in SCORED_OPTIONAL if importlib.util.find_spec(OPTIONAL_KINDS[kind]) is not None]


def planted_units(seeds: Sequence[int], *, timeline: bool = False) -> list[dict[str, Any]]:
    """The benchmark's units in run order: seed by seed, each kind this installation scores (and the timeline)."""
    kinds = [*KINDS, *available_optional_kinds(), *(["timeline"] if timeline else [])]
    return [{"seed": seed, "kind": kind} for seed in seeds for kind in kinds]
