"""One protocol for faithfulness metrics, the same for every method, control and image.

The protocol (documented once, here)
------------------------------------
*Relevance.* The relevance of a pixel is ``|attribution|`` summed over channels
(``Explanation.heatmap(absolute=True)``). Ties are broken in a fixed random order drawn from a
seeded generator per image (``tie_seeds``), so a flat region of a map is removed in the same
scattered order for every method.

*Curves* (``S = steps``; at each of the fractions ``0, 1/S, ..., 1`` that share of pixels – all
channels of a pixel together – is perturbed; the score is the softmax probability of the explained
class; the metric is the area under the curve by the trapezoid rule over [0, 1]):

* ``deletion_morf`` – most relevant pixels first become the *baseline* (default ``"zero"``: zeros
  in the normalized input space, i.e. the model's normalisation mean – the data mean colour only where
  the model normalises by the data mean (ImageNet models by ImageNet's mean; a model wrapped with
  mean 0, std 1 gets black); ``"black"``, ``"white"``, ``"blur"`` as in
  :func:`explainer.baselines.baseline`). Lower is better.
* ``deletion_lerf`` – least relevant pixels first become the baseline. Higher is better.
* ``insertion`` – the canvas starts *blurred* and the most relevant pixels first get their original
  values back. Higher is better. The default blur is RISE's (Petsiuk et al. 2018, their code:
  ``gkern(klen=11, nsig=5)``): an 11 × 11 Gaussian kernel with sigma 5 px, in pixels of the model input
  as RISE applies it at 224 px (on images under 11 px the kernel is cut to the largest odd size that fits);
  ``insertion_blur="sigma20"`` is the earlier, much stronger blur (sigma 1/20 of the shorter side and
  a kernel of ± 3 sigma: 11.2 px and 69 px at 224). It is a curve of its own: with the zero baseline it is not LeRF read backwards (it would be
  if the canvas were the deletion baseline, which is why the canvas is the blur).
* ``road_morf`` – ROAD (Rong et al. 2022): the most relevant pixels first are removed and *imputed*
  from their neighbours by noisy linear imputation, so the curve measures lost information rather than
  the shock of an out-of-distribution patch. Each removed pixel equals the weighted mean of its eight
  neighbours (weight 1/6 for the four direct, 1/12 for the four diagonal ones; known neighbours are
  fixed, removed ones unknown), solved per channel as one sparse symmetric system by preconditioned
  conjugate gradients in torch (batched; started from a coarse-to-fine fill of the known pixels, a
  sample stops iterating when its residual is below ``1e-3`` of its right-hand side or after 200
  iterations, so its result never depends on the rest of the batch), with a
  ridge of ``1e-4`` towards zero that keeps the system solvable when a region has no known pixel
  (fully removed: the data mean); then Gaussian noise of std ``road_noise`` (default 0.01, in
  normalized input units) is added to the imputed pixels only. Lower is better.
* ``road_lerf`` – ROAD in its other order (Rong et al. report both): the least relevant pixels first are
  removed and imputed the same way. Higher is better.

*Cascading randomization* (Adebayo et al. 2018), ``randomization``: copies of the model are
re-initialized from the output down in cumulative steps over the top-level blocks (seeded; the user's
model is never touched), the same method with the same parameters and targets explains each copy,
and the similarity to the original map is the Spearman rank correlation of the absolute maps over
foreground pixels (a constant background colour is left out, see :func:`foreground_mask`). The metric
is the similarity after the last step (everything re-initialized). Lower is better – a map that
explains *this* model must change. The similarity is always defined:

* the randomized map vanished (constant, e.g. an all-zero Grad-CAM) while the original was not:
  similarity 0, reason ``"randomized map vanished"`` – nothing of the original map survived;
* the original map is constant and the randomized one is not: 0, reason ``"original map constant"``;
* both constant: 1, reason ``"both maps constant"`` – the map did not change;
* fewer than two foreground pixels: 0 with reason ``"too few pixels"``.

*Localisation* on data with ground-truth masks (``known_answer``): ``mask_share`` – the share of the
relevance mass inside the mask (an empty map scores the mask's area share, what an evenly spread map
scores, reason ``"empty map"``); ``pointing_game`` – the share of the map's maximal pixels (within a
*Pointing game* (Zhang et al. 2018), ``pointing_game``: a hit when the maximum of the positive evidence lies
within 15 px of the mask (Zhang et al.'s tolerance at 224 px; scaled with the shorter side,
``15 · min(H, W) / 224`` px, so 0.54 px on 8 px digits and 2.1 px on 32 px known-answer images – there only
the mask itself counts); with several maximal pixels (within a relative 1e-6) the score is the share of them
that hit (the expected hit of a random pick); a map without positive evidence scores the share of all
pixels within the tolerance. Higher is better for both.

*Sparseness* (Chalasani et al. 2020): the Gini index of the relevance values, 0 for an evenly spread
map, near 1 when few pixels hold all of it; an empty map scores 0 with reason ``"empty map"``.
Higher means more concentrated (read it next to the others: a sparse map can still be wrong).

Batching: the perturbed inputs of every map, image, curve and step of a call go through the model
together, in passes of at most ``batch_size`` samples (default: the forward-pass memory budget of
``explain`` – 64 MiB of activations per pass on a CPU, half the free memory on a GPU), on the
classifier's device, under inference mode, with the model in eval mode and its flags restored after.

The code: the curves and ROAD's imputation in :mod:`explainer.evidence.curves`, the cascading randomization
in :mod:`explainer.evidence.randomization`, the localisation and sparseness scores in
:mod:`explainer.evidence.map_scores`; this module holds the protocol's settings and the metric specs – each
with the ``score`` that turns one map of one image into its value (``MetricSpec.score``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from explainer.baselines import baseline_name
from explainer.errors import InputError
from explainer.evidence.map_scores import POINTING_SIDE, POINTING_TOLERANCE, gini, mask_share_values, pointing_game
from explainer.evidence.randomization import (
    CascadeStep,
    cascade_similarities,
    null_similarity,
)

#: Curves that remove the least relevant pixels first.
LERF_CURVES = ("deletion_lerf", "road_lerf")
#: Insertion canvases: RISE's blur (default) and the earlier sigma = 1/20 of the side.
INSERTION_BLURS = ("rise", "sigma20")
#: RISE's blur kernel (Petsiuk et al. 2018, their code: ``gkern(klen=11, nsig=5)`` at 224 px).
RISE_KERNEL, RISE_SIGMA = 11, 5.0
#: Default number of steps of a curve (``steps + 1`` points).
DEFAULT_STEPS = 20
#: Most points on a curve: 1,000 steps already resolve 0.1 % of the pixels; more only costs forward passes.
MAX_STEPS = 1000
#: Noise (std, normalized input units) ROAD adds to imputed pixels.
ROAD_NOISE = 0.01
#: ROAD's neighbour weights: (row offset, column offset) → weight.
ROAD_WEIGHTS = {(-1, -1): 1 / 12, (-1, 0): 1 / 6, (-1, 1): 1 / 12, (0, -1): 1 / 6, (0, 1): 1 / 6,
                (1, -1): 1 / 12, (1, 0): 1 / 6, (1, 1): 1 / 12}
#: Ridge towards zero (the data mean in normalized space) that keeps ROAD's system solvable.
ROAD_RIDGE = 1e-4
#: Conjugate-gradient stopping rule: relative residual, and a cap on iterations.
ROAD_TOLERANCE = 1e-3
ROAD_MAX_ITERATIONS = 200
#: Independently randomized copies (different seeds) of the model the randomization metric uses.
RANDOMIZATION_COPIES = 3


@dataclass(frozen=True)
class MapInputs:
    """What a metric scores: one method's (or control's) map of one image, and what it needs besides."""

    heat: torch.Tensor  # (1, H, W) relevance: |attribution| summed over channels
    positive: torch.Tensor  # (1, H, W) positive evidence (a signed map's positive part)
    pixels: torch.Tensor  # (1, C, H, W) the image in [0, 1]
    mask: torch.Tensor | None = None  # (1, H, W) ground truth, where the data has it
    areas: Mapping[str, float] | None = None  # the curves' AUCs (every map's curves run in one batch)
    explain_on: Callable[[Any], torch.Tensor] | None = None  # the method on another model (None: a control)
    cascade: Sequence[CascadeStep] = ()  # this image's randomized copy, step by step
    other_copy: CascadeStep | None = None  # the last step of another randomized copy (the null)


@dataclass(frozen=True)
class Scored:
    """One metric's value on one map, why it is special (e.g. "empty map"), and details for the image's row.

    ``details``: row key → this map's entry (the randomization metric keeps its cascade and its null).
    """

    value: float | None
    reason: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the protocol: its name, what it measures, which direction is better, and how it scores a map.

    ``curve``: the metric is a perturbation curve's AUC – the curves of every map of an image are computed
    together (one batched pass, :func:`explainer.evidence.curves.perturbation_curves`) and ``score`` reads
    its area from :attr:`MapInputs.areas`.
    """

    name: str
    title: str
    better: str  # "lower" or "higher"
    description: str
    score: Callable[[MapInputs], Scored]
    curve: bool = False
    needs_masks: bool = False
    flaggable: bool = True  # a method should beat every control (or, where controls_apply is False, the null)
    controls_apply: bool = True  # False: a control's map does not depend on what the metric changes

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


#: A control's reason for no randomization score: its map does not depend on the weights.
CONTROL_RANDOMIZATION = "not applicable: a control's map does not depend on the weights"


def _area(curve: str) -> Callable[[MapInputs], Scored]:
    def score(inputs: MapInputs) -> Scored:
        if inputs.areas is None or curve not in inputs.areas:
            raise InputError(f"the {curve} curve was not computed for this map.")
        return Scored(float(inputs.areas[curve]))

    return score


def _sparseness(inputs: MapInputs) -> Scored:
    value, reason = gini(inputs.heat)
    return Scored(float(value[0]), reason[0])


def _needs_mask(inputs: MapInputs, name: str) -> torch.Tensor:
    if inputs.mask is None:
        raise InputError(f"{name} needs ground-truth masks (data such as known_answer); leave the metric out.")
    return inputs.mask


def _mask_share(inputs: MapInputs) -> Scored:
    value, reason = mask_share_values(inputs.heat, _needs_mask(inputs, "mask_share"))
    return Scored(float(value[0]), reason[0])


def _pointing_game(inputs: MapInputs) -> Scored:
    return Scored(float(pointing_game(inputs.positive, _needs_mask(inputs, "pointing_game"))[0]))


def _randomization(inputs: MapInputs) -> Scored:
    if inputs.explain_on is None:
        return Scored(None, CONTROL_RANDOMIZATION)
    if not inputs.cascade or inputs.other_copy is None:
        raise InputError("randomization needs randomized copies of the model (randomization_copies ≥ 2).")
    steps, last = cascade_similarities(inputs.heat, inputs.pixels, inputs.cascade, inputs.explain_on)
    null = null_similarity(last, inputs.pixels, inputs.other_copy, inputs.explain_on)
    return Scored(steps[-1]["similarity"], steps[-1]["reason"], {"randomization": steps, "randomization_null": null})


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("deletion_morf", "Deletion, most relevant first (AUC)", "lower",
                   "target probability while the most relevant pixels become the baseline",
                   _area("deletion_morf"), curve=True),
        MetricSpec("deletion_lerf", "Deletion, least relevant first (AUC)", "higher",
                   "target probability while the least relevant pixels become the baseline",
                   _area("deletion_lerf"), curve=True),
        MetricSpec("insertion", "Insertion into a blurred image (AUC)", "higher",
                   "target probability while the most relevant pixels are restored on a blurred canvas",
                   _area("insertion"), curve=True),
        MetricSpec("road_morf", "ROAD deletion, most relevant first (AUC)", "lower",
                   "deletion with removed pixels imputed from their neighbours (noisy linear imputation)",
                   _area("road_morf"), curve=True),
        MetricSpec("road_lerf", "ROAD deletion, least relevant first (AUC)", "higher",
                   "ROAD with the least relevant pixels removed (and imputed) first",
                   _area("road_lerf"), curve=True),
        MetricSpec("randomization", "Similarity after model randomization", "lower",
                   "Spearman of the map with the fully randomized model's map (0 when it vanished); judged "
                   "against the null: two independently randomized copies' maps", _randomization,
                   controls_apply=False),
        MetricSpec("mask_share", "Share of relevance inside the mask", "higher",
                   "relevance mass on the pixels that decide the class", _mask_share, needs_masks=True),
        MetricSpec("pointing_game", "Pointing game", "higher",
                   "hit when the map's maximum lies within 15 px (at 224 px) of the mask", _pointing_game,
                   needs_masks=True),
        MetricSpec("sparseness", "Sparseness (Gini)", "higher",
                   "Gini index of the relevance values: how concentrated the map is", _sparseness, flaggable=False),
    )
}
#: The perturbation curves, in the order they are computed.
CURVES = tuple(name for name, spec in METRICS.items() if spec.curve)


def metric(name: str) -> MetricSpec:
    """The spec of metric ``name``; InputError listing the valid names otherwise."""
    if name not in METRICS:
        raise InputError(f"Unknown metric {name!r}; choose from: {', '.join(METRICS)}.")
    return METRICS[name]

def protocol_description(steps: int, baseline: str, road_noise: float, randomization_steps: int,
                         insertion_blur: str = "rise", randomization_copies: int = RANDOMIZATION_COPIES
                         ) -> dict[str, Any]:
    """The protocol's settings as a JSON-ready dict (stored with every result)."""
    canvas = ("RISE: 11 x 11 kernel, sigma 5 px" if insertion_blur == "rise"
              else "sigma 1/20 of the shorter side")
    return {
        "relevance": "|attribution| summed over channels; ties in a seeded random order per image",
        "score": "softmax probability of the target class; AUC by the trapezoid rule",
        "steps": steps,
        "baseline": baseline_name(baseline),
        "insertion": f"most relevant first restored on a blurred canvas ({canvas})",
        "insertion_blur": insertion_blur,
        "road": f"noisy linear imputation from 8 neighbours (1/6, 1/12), noise std {road_noise}; MoRF and LeRF",
        "pointing_game": f"hit when the positive maximum is within {POINTING_TOLERANCE:g} px of the mask at "
                         f"{POINTING_SIDE} px (scaled with the shorter side)",
        "randomization": f"Spearman of |maps| over foreground pixels after {randomization_steps} cumulative "
                         f"re-initialization steps; {randomization_copies} randomized copies (seeds differ), "
                         "image i on copy i mod copies; null = the same method's maps on two different copies; "
                         "vanished randomized map = 0, both constant = 1; not applicable to controls",
    }
