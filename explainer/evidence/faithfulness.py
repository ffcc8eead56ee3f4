"""Evidence that an attribution map is faithful to the model, for the images of one explanation.

:func:`check_faithfulness` is the one-explanation case of :func:`explainer.evaluate`: the same protocol
(:mod:`explainer.evidence.metrics` documents it once) on the images the explanation carries –

* deletion curves, most relevant first (MoRF) and least relevant first (LeRF), and random orders as
  the reference (the ``control:random`` map of :mod:`explainer.evidence.controls`);
* insertion into a blurred canvas, a curve of its own (not LeRF read backwards);
* optionally ROAD deletion (removed pixels imputed from their neighbours);
* cascading model randomization (Adebayo et al. 2018) with a similarity that is always defined.

Also here: agreement between methods and the share of attribution mass inside a ground-truth mask.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from explainer.attribution.explanation import Explanation, explain
from explainer.baselines import BASELINES  # what a deleted pixel can become ("zeros" is accepted for "zero")
from explainer.errors import InputError
from explainer.evidence.controls import random_map
from explainer.evidence.curves import area_under_curve, check_steps, perturbation_curves
from explainer.evidence.map_scores import aligned_masks
from explainer.evidence.metrics import CURVES, protocol_description
from explainer.evidence.precision import CHECK_IMAGES, fast_forward, resolve_precision
from explainer.evidence.randomization import (
    cascade_units,
    foreground_mask,
    map_similarity,
    randomized_cascade,
    rank_correlation,
)
from explainer.guards import eval_mode
from explainer.models import Classifier

__all__ = [
    "BASELINES", "FaithfulnessReport", "MaskShare", "RandomizationStep", "area_under_curve", "cascade_units",
    "check_faithfulness", "foreground_mask", "mask_share", "method_agreement", "rank_correlation",
]

#: Similarity below which a map counts as changed by full model randomization.
RANDOMIZATION_THRESHOLD = 0.5
#: Bounds of the repeat counts (each random order and each randomization step costs a full pass of curves).
MAX_RANDOM_SEEDS = 100
MAX_RANDOMIZATION_STEPS = 100


@dataclass
class RandomizationStep:
    """One step of the randomization cascade: which layers were re-initialized, and how the map moved."""

    name: str  # the lowest unit re-initialized so far, or "all"
    layers: list[str]  # every unit re-initialized so far, output first
    correlations: np.ndarray  # (N,) similarity with the original map (Spearman, foreground; always defined)
    reasons: list[str | None] = field(default_factory=list)  # per image: why a rule set the value, or None

    @property
    def mean(self) -> float:
        return float(np.mean(self.correlations)) if len(self.correlations) else float("nan")


@dataclass
class FaithfulnessReport:
    """Deletion/insertion curves, AUCs, randomization cascade and verdicts for one explanation.

    Curves hold the target-class softmax probability at each fraction of pixels perturbed. Insertion
    restores the most relevant pixels first on a blurred canvas, so it is a curve of its own (not LeRF
    read backwards); ``random_*`` curves use random maps (the random control) as the reference.
    """

    method: str
    model_name: str
    targets: list[int]
    labels: list[str]
    fractions: np.ndarray  # (S + 1,) fraction of pixels deleted / inserted
    morf: np.ndarray  # (N, S + 1) most relevant deleted first
    lerf: np.ndarray  # (N, S + 1) least relevant deleted first
    random_deletion: np.ndarray  # (seeds, N, S + 1) random orders
    randomization: list[RandomizationStep]
    protocol: dict[str, Any]
    seconds: float
    device: str
    insertion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (N, S + 1) on the blurred canvas
    random_insertion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (seeds, N, S + 1)
    road: np.ndarray | None = None  # (N, S + 1) ROAD deletion, most relevant first (when asked for)
    road_lerf: np.ndarray | None = None  # (N, S + 1) ROAD deletion, least relevant first (with road)

    # ------------------------------------------------------------------- curves

    def random_band(self, kind: str = "deletion") -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over random orders, each ``(N, S + 1)``; kind is deletion or insertion."""
        curves = {"deletion": self.random_deletion, "insertion": self.random_insertion}.get(kind)
        if curves is None:
            raise InputError(f"kind must be 'deletion' or 'insertion', got {kind!r}.")
        return curves.mean(axis=0), curves.std(axis=0)

    # --------------------------------------------------------------------- AUCs
    @property
    def aucs(self) -> dict[str, np.ndarray]:
        """Area under each curve per image, ``(N,)``; random AUCs are averaged over orders."""
        aucs = {
            "deletion": area_under_curve(self.fractions, self.morf),
            "lerf_deletion": area_under_curve(self.fractions, self.lerf),
            "random_deletion": area_under_curve(self.fractions, self.random_deletion).mean(axis=0),
            "insertion": area_under_curve(self.fractions, self.insertion),
            "random_insertion": area_under_curve(self.fractions, self.random_insertion).mean(axis=0),
        }
        if self.road is not None:
            aucs["road_deletion"] = area_under_curve(self.fractions, self.road)
        if self.road_lerf is not None:
            aucs["road_lerf_deletion"] = area_under_curve(self.fractions, self.road_lerf)
        return aucs

    @property
    def mean_aucs(self) -> dict[str, float]:
        return {name: float(values.mean()) for name, values in self.aucs.items()}

    @property
    def randomization_correlation(self) -> np.ndarray | None:
        """Per-image similarity after the last (full) randomization step (always defined), or None if not run."""
        return self.randomization[-1].correlations if self.randomization else None

    @property
    def verdicts(self) -> list[dict[str, bool]]:
        """Per image: did the map pass each check?

        ``morf_below_lerf`` – deleting the most relevant pixels first hurts more than deleting the least
        relevant first; ``insertion_above_random`` – inserting by relevance beats random insertion;
        ``deletion_below_random`` – MoRF deletion beats random deletion (scattered random deletion is
        itself destructive, so good compact maps can fail this one); ``changes_when_randomized`` – rank
        similarity after full randomization below ``RANDOMIZATION_THRESHOLD`` (a vanished randomized map
        has similarity 0; only when randomization ran).
        """
        aucs = self.aucs
        final = self.randomization_correlation
        verdicts = []
        for i in range(len(self.targets)):
            verdict = {
                "morf_below_lerf": bool(aucs["deletion"][i] < aucs["lerf_deletion"][i]),
                "insertion_above_random": bool(aucs["insertion"][i] > aucs["random_insertion"][i]),
                "deletion_below_random": bool(aucs["deletion"][i] < aucs["random_deletion"][i]),
            }
            if final is not None:
                verdict["changes_when_randomized"] = not bool(final[i] >= RANDOMIZATION_THRESHOLD)
            verdicts.append(verdict)
        return verdicts

    # ------------------------------------------------------------------- output
    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready lists, floats and strings."""
        random_del_mean, random_del_std = self.random_band("deletion")
        random_ins_mean, random_ins_std = self.random_band("insertion")
        return {
            "method": self.method,
            "model_name": self.model_name,
            "targets": list(self.targets),
            "labels": list(self.labels),
            "protocol": dict(self.protocol),
            "seconds": self.seconds,
            "device": self.device,
            "fractions": self.fractions.tolist(),
            "curves": {
                **({"road_deletion": self.road.tolist()} if self.road is not None else {}),
                **({"road_lerf_deletion": self.road_lerf.tolist()} if self.road_lerf is not None else {}),
                "morf_deletion": self.morf.tolist(),
                "lerf_deletion": self.lerf.tolist(),
                "insertion": self.insertion.tolist(),
                "random_deletion_mean": random_del_mean.tolist(),
                "random_deletion_std": random_del_std.tolist(),
                "random_insertion_mean": random_ins_mean.tolist(),
                "random_insertion_std": random_ins_std.tolist(),
            },
            "aucs": {name: values.tolist() for name, values in self.aucs.items()},
            "mean_aucs": self.mean_aucs,
            "verdicts": self.verdicts,
            "randomization": [
                {
                    "name": step.name,
                    "layers": step.layers,
                    "correlations": step.correlations.tolist(),
                    "reasons": list(step.reasons),
                    "mean": step.mean,
                }
                for step in self.randomization
            ],
        }

    def summary(self) -> pd.DataFrame:
        """One row per image: target, label, every AUC, the randomization similarity and each check passed."""
        rows = []
        aucs, verdicts = self.aucs, self.verdicts
        similarity = self.randomization_correlation
        for i, target in enumerate(self.targets):
            row: dict[str, Any] = {"image": i, "target": target, "label": self.labels[i]}
            row.update({f"{name}_auc": float(values[i]) for name, values in aucs.items()})
            row["randomization_similarity"] = float(similarity[i]) if similarity is not None else None
            row.update(verdicts[i])
            rows.append(row)
        return pd.DataFrame(rows)

    def verdict(self) -> str:
        """A few plain sentences: what was measured and where the map passed or failed."""
        n = len(self.targets)
        means, verdicts = self.mean_aucs, self.verdicts

        def tally(key: str) -> str:
            failed = [f"{i} ({self.labels[i]})" for i, v in enumerate(verdicts) if not v[key]]
            text = f"{n - len(failed)}/{n} images"
            return text + (f"; fails on image {', '.join(failed)}" if failed else "")

        p = self.protocol
        lines = [
            f"{self.method} on {self.model_name}: {n} image(s), {p['baseline']} baseline, {p['steps']} steps, "
            f"{p['random_seeds']} random orders ({self.seconds:.1f} s on {self.device}).",
            f"Deleting the most relevant pixels first lowers the target probability faster than deleting the "
            f"least relevant first on {tally('morf_below_lerf')} (mean AUC {means['deletion']:.3g} vs "
            f"{means['lerf_deletion']:.3g}; lower is better for MoRF).",
            f"Inserting the most relevant pixels first beats random insertion on {tally('insertion_above_random')} "
            f"(mean AUC {means['insertion']:.3g} vs {means['random_insertion']:.3g}; insertion restores pixels on a "
            "blurred canvas).",
            f"MoRF deletion beats random deletion on {tally('deletion_below_random')} (mean AUC "
            f"{means['deletion']:.3g} vs {means['random_deletion']:.3g}; scattered random deletion is itself "
            "destructive, so compact maps can lose here).",
        ]
        if self.randomization:
            final = self.randomization[-1]
            vanished = sum(reason == "randomized map vanished" for reason in final.reasons)
            note = f", {vanished} randomized map(s) vanished (similarity 0)" if vanished else ""
            lines.append(
                f"Model randomization: after re-initializing all layers the map's similarity with the "
                f"original is {final.mean:.2f} on average{note}; the map changes (correlation < "
                f"{RANDOMIZATION_THRESHOLD}) on {tally('changes_when_randomized')}."
            )
        return "\n".join(lines)


@dataclass
class MaskShare:
    """Share of absolute attribution mass inside a ground-truth mask, with the mask's area share as reference."""

    method: str
    share: np.ndarray  # (N,) attribution mass inside the mask / total mass
    area_share: np.ndarray  # (N,) mask pixels / all pixels (what a uniform map would score)

    @property
    def mean_share(self) -> float:
        """Mean over images whose map is not empty (NaN when every map is empty)."""
        return float(np.nanmean(self.share)) if np.isfinite(self.share).any() else float("nan")

    @property
    def mean_area_share(self) -> float:
        return float(self.area_share.mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "share": self.share.tolist(),
            "area_share": self.area_share.tolist(),
            "mean_share": self.mean_share,
            "mean_area_share": self.mean_area_share,
        }


# ------------------------------------------------------------------------ agreement
def method_agreement(explanations: Sequence[Explanation]) -> tuple[list[str], np.ndarray]:
    """Spearman correlation between the absolute heatmaps of several explanations of the same images.

    Returns the method names and a symmetric ``(M, M)`` float32 matrix, averaged over images, computed
    over foreground pixels (see :func:`foreground_mask`).
    """
    explanations = list(explanations)
    if len(explanations) < 2:
        raise InputError(f"method_agreement needs at least two explanations, got {len(explanations)}.")
    first = explanations[0]
    for other in explanations[1:]:
        if other.attributions.shape[0] != first.attributions.shape[0] or other.heatmap().shape != first.heatmap().shape:
            raise InputError(
                f"Explanations cover different images: {first.method} has maps {tuple(first.heatmap().shape)}, "
                f"{other.method} has {tuple(other.heatmap().shape)}. Explain the same images with each method."
            )
    names = _unique_names([e.method for e in explanations])
    maps = [e.heatmap(absolute=True) for e in explanations]
    masks = foreground_mask(first.pixels)
    size = len(explanations)
    matrix = np.eye(size, dtype=np.float32)
    for i in range(size):
        for j in range(i + 1, size):
            values = [rank_correlation(maps[i][k], maps[j][k], masks[k]) for k in range(masks.shape[0])]
            matrix[i, j] = matrix[j, i] = np.nanmean(values) if np.isfinite(values).any() else np.nan
    return names, matrix


def _unique_names(names: list[str]) -> list[str]:
    return [name if names.count(name) == 1 else f"{name} ({names[:i].count(name) + 1})" for i, name in enumerate(names)]


def mask_share(explanation: Explanation, masks: torch.Tensor) -> MaskShare:
    """Share of absolute attribution mass inside ``masks`` (bool ``(N, 1, H, W)`` or ``(N, H, W)``).

    ``area_share`` – the mask's share of all pixels – is what a map spreading its mass evenly scores.
    """
    heat, masks = aligned_masks(explanation.heatmap(absolute=True), masks)
    total = heat.flatten(1).sum(dim=1)
    inside = (heat * masks).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
    area = masks.flatten(1).double().mean(dim=1)
    return MaskShare(explanation.method, share.numpy(), area.numpy())


# ------------------------------------------------------------------ main entry
def check_faithfulness(
    classifier: Classifier,
    explanation: Explanation,
    legacy_explanation: Explanation | None = None,
    *,
    steps: int = 25,
    random_seeds: int = 3,
    baseline: str = "zero",
    randomization: bool = True,
    randomization_steps: int = 4,
    road: bool = False,
    batch_size: int | None = None,
    seed: int = 0,
    precision: str = "fp32",
    compile: bool = False,
    insertion_blur: str = "rise",
    progress: bool = True,
    budget_seconds: float | None = None,
) -> FaithfulnessReport:
    """Measure how faithful ``explanation`` is to ``classifier`` on the images it carries.

    The protocol is :mod:`explainer.evidence.metrics`' (the same as :func:`explainer.evaluate`'s, and for
    one image with the same ``seed`` the same numbers): relevance = ``|attribution|`` summed over channels;
    ``steps + 1`` fractions of pixels; deleted pixels become ``baseline`` (``"zero"``, ``"black"``,
    ``"white"`` or ``"blur"``); insertion restores the most relevant pixels on a blurred canvas;
    ``random_seeds`` random maps as the reference; ``road=True`` adds ROAD in both orders (MoRF and LeRF);
    ``insertion_blur``: ``"rise"`` (RISE's 11 × 11, sigma 5 kernel; default) or ``"sigma20"``. With
    ``randomization``, seeded copies of the model are re-initialized from the output down in
    ``randomization_steps`` cumulative steps and the same method, parameters and targets are explained on
    each; the similarity with the original map is always defined (a vanished map scores 0). The caller's
    model is never modified. ``precision`` (``"fp32"``, ``"bf16"``, ``"auto"``) and ``compile``: how the
    curves' perturbed forwards run (:mod:`explainer.evidence.precision`; recorded in ``protocol["precision"]``).

    ``progress``: the estimate, then a bar over the stages (curves, each randomization step) on stderr;
    False is silent. ``budget_seconds``: refuse (InputError with what to shrink) a check estimated above it.

    The old call ``check_faithfulness(classifier, images, explanation)`` still works (with a
    DeprecationWarning): the images are the explanation's own.
    """
    if legacy_explanation is not None:
        warnings.warn(
            "check_faithfulness(classifier, images, explanation) is deprecated: the explanation carries its "
            "images; call check_faithfulness(classifier, explanation).", DeprecationWarning, stacklevel=2,
        )
        explanation = legacy_explanation
    started = time.perf_counter()
    _check_options(classifier, explanation, steps, random_seeds, randomization_steps)
    from explainer.evidence.image_scoring import unit_seed

    device = classifier.device
    inputs = explanation.inputs.to(device)
    relevance = explanation.heatmap(absolute=True)
    count = relevance.shape[0]
    targets = [int(t) for t in explanation.targets]
    image_seeds = [unit_seed(seed, i) for i in range(count)]
    # random reference maps: the random control, with the seed of evaluate() first
    random_maps = [random_map(explanation.pixels, [unit_seed(seed + 7919 * r, i) for i in range(count)])
                   for r in range(random_seeds)]
    curves = [c for c in CURVES if road or not c.startswith("road")]
    chosen = resolve_precision(classifier, precision, compile=compile, probe=inputs[:CHECK_IMAGES])
    forward = fast_forward(classifier, chosen)
    bar = _announce(classifier, explanation, inputs, forward, len(curves) * (1 + random_seeds) * (steps + 1),
                    randomization_steps if randomization else 0, progress, budget_seconds)
    try:
        fractions, values = perturbation_curves(
            classifier, inputs, torch.stack([relevance, *random_maps]), targets, curves=curves, steps=steps,
            baseline=baseline, tie_seeds=image_seeds, batch_size=batch_size, forward=forward,
            insertion_blur=insertion_blur,
        )
        if bar is not None:
            bar.update(1)
        cascade = _randomization(classifier, explanation, randomization_steps, seed, bar) if randomization else []
    finally:
        if bar is not None:
            bar.close()
    protocol = {
        **protocol_description(steps, baseline, 0.01, len(cascade), insertion_blur, 1),
        "random_seeds": random_seeds,
        "seed": seed,
        "randomization_steps": len(cascade),
        "precision": chosen.to_dict(),
    }
    return FaithfulnessReport(
        method=explanation.method,
        model_name=classifier.name,
        targets=targets,
        labels=[classifier.labels[t] for t in targets],
        fractions=fractions.astype(np.float32),
        morf=values["deletion_morf"][0],
        lerf=values["deletion_lerf"][0],
        random_deletion=values["deletion_morf"][1:],
        randomization=cascade,
        protocol=protocol,
        seconds=time.perf_counter() - started,
        device=str(device),
        insertion=values["insertion"][0],
        random_insertion=values["insertion"][1:],
        road=values["road_morf"][0] if road else None,
        road_lerf=values["road_lerf"][0] if road else None,
    )


def _check_options(
    classifier: Classifier, explanation: Explanation, steps: int, random_seeds: int, randomization_steps: int
) -> None:
    if not isinstance(explanation, Explanation):
        raise InputError(
            f"explanation must be an Explanation from explainer.explain(...), got {type(explanation).__name__}."
        )
    same = explanation.made_with(classifier)
    if same is False or (same is None and explanation.model_name != classifier.name):
        raise InputError(
            f"The explanation was computed with other weights (model {explanation.model_name!r}) than the "
            f"classifier's ({classifier.name!r}); check faithfulness with the model that was explained."
        )
    check_steps(steps)
    for name, value, most in (("random_seeds", random_seeds, MAX_RANDOM_SEEDS),
                              ("randomization_steps", randomization_steps, MAX_RANDOMIZATION_STEPS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise InputError(f"{name} must be an integer from 1 to {most}, got {value!r}.")


def _announce(classifier: Classifier, explanation: Explanation, inputs: torch.Tensor, forward: Any, perturbed: int,
              randomization_steps: int, progress: bool, budget_seconds: float | None) -> Any:
    """Estimate the check (perturbed forwards timed on one batch + the explanation's seconds per
    randomization step), refuse it over ``budget_seconds``, print it and return a stage bar (or None)."""
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds or None (no limit), got {budget_seconds!r}.")
    if progress is False and budget_seconds is None:
        return None
    probe = inputs[:1].expand(min(8, perturbed), *inputs.shape[1:])
    with eval_mode(classifier.module), torch.inference_mode():
        forward(probe)  # warm-up
        started = time.perf_counter()
        forward(probe)
        per_sample = (time.perf_counter() - started) / probe.shape[0]
    seconds = per_sample * perturbed * inputs.shape[0] + explanation.seconds * randomization_steps
    text = (f"≈ {seconds:.1f} s for {inputs.shape[0]} image(s) ({perturbed} perturbed forwards per image, "
            f"{randomization_steps} randomization step(s) at {explanation.seconds:.2g} s each)")
    if budget_seconds is not None and seconds > budget_seconds:
        raise InputError(f"This check is estimated at {text} – over the time budget of {budget_seconds:g} s. Use "
                         "fewer steps or random_seeds, randomization=False or fewer randomization_steps, fewer images, "
                         "or pass budget_seconds=None (no limit) or a larger budget.")
    if progress is False:
        return None
    from tqdm import tqdm

    print(f"estimate: {text}", file=sys.stderr)
    return tqdm(total=1 + randomization_steps, desc="check_faithfulness", unit="stage", file=sys.stderr)


def _randomization(
    classifier: Classifier, explanation: Explanation, num_steps: int, seed: int, bar: Any = None
) -> list[RandomizationStep]:
    """The cascade of :func:`explainer.evidence.randomization.randomized_cascade`, scored by ``map_similarity``."""
    original = explanation.heatmap(absolute=True)
    masks = foreground_mask(explanation.pixels)
    method_params = {key: value for key, value in explanation.params.items() if key in explanation.spec.defaults}
    steps: list[RandomizationStep] = []
    for step in randomized_cascade(classifier, num_steps, seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-zero randomized map is a result here, not a problem
            again = explain(
                step.classifier, explanation.pixels, method=explanation.method, target=list(explanation.targets),
                layer=explanation.layer, internal_batch_size=explanation.params.get("internal_batch_size"),
                budget_seconds=None, **method_params,
            ).heatmap(absolute=True)
        pairs = [map_similarity(original[i], again[i], masks[i]) for i in range(original.shape[0])]
        steps.append(RandomizationStep(step.name, step.layers, np.array([p[0] for p in pairs]), [p[1] for p in pairs]))
        if bar is not None:
            bar.update(1)
    return steps
