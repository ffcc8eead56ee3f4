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
  :func:`explainer._plumbing.baseline`). Lower is better.
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
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explainer._plumbing import baseline as reference_image
from explainer._plumbing import baseline_name, eval_mode, isolated_rng, seeded_generator
from explainer.errors import InputError

if TYPE_CHECKING:
    from explainer.models import Classifier

#: The perturbation curves, in the order they are computed.
CURVES = ("deletion_morf", "deletion_lerf", "insertion", "road_morf", "road_lerf")
#: Curves that remove the least relevant pixels first.
LERF_CURVES = ("deletion_lerf", "road_lerf")
#: Insertion canvases: RISE's blur (default) and the earlier sigma = 1/20 of the side.
INSERTION_BLURS = ("rise", "sigma20")
#: RISE's blur kernel (Petsiuk et al. 2018, their code: ``gkern(klen=11, nsig=5)`` at 224 px).
RISE_KERNEL, RISE_SIGMA = 11, 5.0
#: Zhang et al.'s pointing-game tolerance in pixels at 224 px (scaled with the shorter side).
POINTING_TOLERANCE, POINTING_SIDE = 15.0, 224
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
#: Default cascade length of the randomization check.
RANDOMIZATION_STEPS = 4
#: Independently randomized copies (different seeds) of the model the randomization metric uses.
RANDOMIZATION_COPIES = 3


@dataclass(frozen=True)
class MetricSpec:
    """A metric of the protocol: its name, what it measures and which direction is better."""

    name: str
    title: str
    better: str  # "lower" or "higher"
    description: str
    needs_masks: bool = False
    flaggable: bool = True  # a method should beat every control (or, where controls_apply is False, the null)
    controls_apply: bool = True  # False: a control's map does not depend on what the metric changes

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("deletion_morf", "Deletion, most relevant first (AUC)", "lower",
                   "target probability while the most relevant pixels become the baseline"),
        MetricSpec("deletion_lerf", "Deletion, least relevant first (AUC)", "higher",
                   "target probability while the least relevant pixels become the baseline"),
        MetricSpec("insertion", "Insertion into a blurred image (AUC)", "higher",
                   "target probability while the most relevant pixels are restored on a blurred canvas"),
        MetricSpec("road_morf", "ROAD deletion, most relevant first (AUC)", "lower",
                   "deletion with removed pixels imputed from their neighbours (noisy linear imputation)"),
        MetricSpec("road_lerf", "ROAD deletion, least relevant first (AUC)", "higher",
                   "ROAD with the least relevant pixels removed (and imputed) first"),
        MetricSpec("randomization", "Similarity after model randomization", "lower",
                   "Spearman of the map with the fully randomized model's map (0 when it vanished); judged "
                   "against the null: two independently randomized copies' maps", controls_apply=False),
        MetricSpec("mask_share", "Share of relevance inside the mask", "higher",
                   "relevance mass on the pixels that decide the class", needs_masks=True),
        MetricSpec("pointing_game", "Pointing game", "higher",
                   "hit when the map's maximum lies within 15 px (at 224 px) of the mask", needs_masks=True),
        MetricSpec("sparseness", "Sparseness (Gini)", "higher",
                   "Gini index of the relevance values: how concentrated the map is", flaggable=False),
    )
}


def metric(name: str) -> MetricSpec:
    """The spec of metric ``name``; InputError listing the valid names otherwise."""
    if name not in METRICS:
        raise InputError(f"Unknown metric {name!r}; choose from: {', '.join(METRICS)}.")
    return METRICS[name]


# ---------------------------------------------------------------------------------- curves
def area_under_curve(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``curves`` (``(..., S + 1)``) over ``fractions`` in [0, 1]."""
    return np.asarray(np.trapezoid(np.asarray(curves, dtype=np.float64), np.asarray(fractions, dtype=np.float64),
                                   axis=-1))


def check_steps(steps: int) -> None:
    """InputError unless ``steps`` is an integer from 2 (a curve needs 3 points) to :data:`MAX_STEPS`."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_STEPS:
        raise InputError(
            f"steps must be an integer from 2 to {MAX_STEPS} (a curve needs 3 points; more than {MAX_STEPS} "
            f"only multiplies the forward passes), got {steps!r}."
        )


def step_counts(num_pixels: int, steps: int) -> torch.Tensor:
    """Pixels perturbed at each of the ``steps + 1`` points of a curve."""
    check_steps(steps)
    return torch.tensor([round(k * num_pixels / steps) for k in range(steps + 1)], dtype=torch.long)


def morf_ranks(relevance: torch.Tensor, tie_seeds: Sequence[int]) -> torch.Tensor:
    """``(M, N, P)`` position of each pixel in the most-relevant-first order of each map.

    ``relevance`` is ``(M, N, H, W)``; ties are broken by a fixed permutation per image, drawn from a
    generator seeded with ``tie_seeds[n]`` (the same for every map of that image).
    """
    maps, count = relevance.shape[:2]
    flat = relevance.detach().float().cpu().reshape(maps, count, -1)
    size = flat.shape[-1]
    ranks = torch.empty(maps, count, size, dtype=torch.long)
    positions = torch.arange(size)
    for n in range(count):
        shuffle = torch.randperm(size, generator=seeded_generator(int(tie_seeds[n])))
        order = shuffle[torch.argsort(flat[:, n, shuffle], dim=1, descending=True, stable=True)]
        ranks[:, n].scatter_(1, order, positions.expand(maps, size))
    return ranks


def forward_batch_size(classifier: Classifier, shape: tuple[int, ...], memory_budget_mb: float | None = None) -> int:
    """Samples per forward-only pass within ``explain``'s memory budget for this model and input shape."""
    from explainer.attribution.memory import budget_bytes, sample_memory, samples_per_pass

    cost = sample_memory(classifier, tuple(shape))
    device = classifier.device
    return samples_per_pass(budget_bytes(device, memory_budget_mb), cost.forward_bytes, True, device)


def perturbation_curves(
    classifier: Classifier,
    inputs: torch.Tensor,
    relevance: torch.Tensor,
    targets: Sequence[int],
    *,
    curves: Sequence[str] = CURVES,
    steps: int = DEFAULT_STEPS,
    baseline: str = "zero",
    road_noise: float = ROAD_NOISE,
    tie_seeds: Sequence[int] | None = None,
    batch_size: int | None = None,
    memory_budget_mb: float | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    insertion_blur: str = "rise",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Target-probability curves of the protocol for ``M`` maps of each of ``N`` images.

    ``inputs``: normalized model inputs ``(N, C, H, W)``; ``relevance``: ``(N, H, W)`` or ``(M, N, H, W)``
    (e.g. one map per method), non-negative; ``targets``: one class per image. Returns the fractions
    ``(S + 1,)`` and, per curve name, probabilities ``(M, N, S + 1)`` (``(N, S + 1)`` for 3-D relevance).
    All ``M × N × curves × (S + 1)`` perturbed inputs share forward passes; ``forward(batch) -> probabilities``
    runs them (default: the module in fp32; :mod:`explainer.evidence.precision` makes bf16/compiled ones).
    """
    unknown = [c for c in curves if c not in CURVES]
    if unknown:
        raise InputError(f"Unknown curve(s) {unknown}; choose from: {', '.join(CURVES)}.")
    squeeze = relevance.ndim == 3
    relevance = relevance.unsqueeze(0) if squeeze else relevance
    count, _, height, width = inputs.shape
    if relevance.ndim != 4 or tuple(relevance.shape[1:]) != (count, height, width):
        raise InputError(f"relevance must be (N, H, W) or (M, N, H, W) for inputs {tuple(inputs.shape)}, got "
                         f"{tuple(relevance.shape)}.")
    if len(targets) != count:
        raise InputError(f"{len(targets)} targets for {count} images; give one per image.")
    device = classifier.device
    inputs = inputs.detach().to(device)
    seeds = list(range(count)) if tie_seeds is None else [int(s) for s in tie_seeds]
    ranks = morf_ranks(relevance, seeds).to(device)  # (M, N, P)
    counts = step_counts(height * width, steps)
    fills = {
        "deletion": reference_image(inputs, baseline_name(baseline), mean=classifier.mean, std=classifier.std),
        "canvas": insertion_canvas(inputs, insertion_blur),
    }
    maps = relevance.shape[0]
    jobs = torch.cartesian_prod(
        torch.arange(len(curves)), torch.arange(maps), torch.arange(count), torch.arange(steps + 1)
    )
    size = batch_size or forward_batch_size(classifier, tuple(inputs.shape[1:]))
    target_index = torch.as_tensor([int(t) for t in targets], device=device)
    results = []
    with eval_mode(classifier.module), torch.inference_mode():
        for chunk in jobs.split(size):
            batch = _perturbed(inputs, ranks, counts, fills, chunk, list(curves), road_noise, seeds)
            probabilities = forward(batch) if forward else classifier.module(batch).float().softmax(dim=1)
            results.append(probabilities.gather(1, target_index[chunk[:, 2].to(device)].view(-1, 1))[:, 0].cpu())
    values = torch.cat(results).view(len(curves), maps, count, steps + 1).numpy()
    out = {name: values[i][0] if squeeze else values[i] for i, name in enumerate(curves)}
    return (counts.double() / (height * width)).numpy(), out


def _perturbed(
    inputs: torch.Tensor,
    ranks: torch.Tensor,
    counts: torch.Tensor,
    fills: dict[str, torch.Tensor],
    chunk: torch.Tensor,
    curves: list[str],
    road_noise: float,
    seeds: list[int],
) -> torch.Tensor:
    """The perturbed inputs of one chunk of (curve, map, image, step) jobs."""
    height, width = inputs.shape[-2:]
    curve, map_index, image, step = (chunk[:, k] for k in range(4))
    device = inputs.device
    rank = ranks[map_index.to(device), image.to(device)]  # (B, P)
    count = counts[step].to(device).view(-1, 1)
    is_lerf = torch.tensor([curves[int(c)] in LERF_CURVES for c in curve], device=device).view(-1, 1)
    # LeRF removes the pixels at the end of the MoRF order first
    removed = torch.where(is_lerf, rank >= rank.shape[1] - count, rank < count).view(-1, 1, height, width)
    original = inputs[image.to(device)]
    batch = torch.where(removed, fills["deletion"][image.to(device)], original)
    for position, name in enumerate(curves):
        rows = (curve == position).nonzero().flatten()
        if rows.numel() == 0:
            continue
        if name == "insertion":
            index = rows.to(device)
            batch[index] = torch.where(removed[index], original[index], fills["canvas"][image[rows].to(device)])
        elif name in ("road_morf", "road_lerf"):
            index = rows.to(device)
            noise_seeds = [seeds[int(image[r])] * 1_000_003 + int(map_index[r]) * 1009 + int(step[r]) for r in rows]
            batch[index] = noisy_linear_impute(original[index], removed[index], road_noise, noise_seeds)
    return batch


def insertion_canvas(inputs: torch.Tensor, kind: str = "rise") -> torch.Tensor:
    """The blurred canvas insertion starts from: RISE's 11 × 11, sigma 5 kernel (``"rise"``) or ``"sigma20"``."""
    if kind not in INSERTION_BLURS:
        raise InputError(f"insertion_blur={kind!r} is not known; choose one of: {', '.join(INSERTION_BLURS)}.")
    if kind == "sigma20":
        return reference_image(inputs, "blur")
    from torchvision.transforms.functional import gaussian_blur

    side = min(int(s) for s in inputs.shape[-2:])
    kernel = min(RISE_KERNEL, 2 * (side - 1) + 1)  # reflect padding needs kernel // 2 < side
    if kernel < 3:
        return inputs.detach().clone()
    return gaussian_blur(inputs.detach(), [kernel, kernel], [RISE_SIGMA, RISE_SIGMA])


# --------------------------------------------------------------------------------- ROAD
def _neighbour_sum(field: torch.Tensor) -> torch.Tensor:
    """ROAD's weighted sum of the 8 neighbours (1/6 direct, 1/12 diagonal), zero outside the image.

    The kernel [[1, 2, 1], [2, 0, 2], [1, 2, 1]] / 12 is the separable [1, 2, 1] ⊗ [1, 2, 1] minus 4 at
    the centre, so two 1-D passes of shifted adds replace a (slow on CPUs) depthwise convolution.
    """
    padded = F.pad(field, (1, 1, 0, 0))
    rows = padded[..., :-2] + 2 * padded[..., 1:-1] + padded[..., 2:]
    padded = F.pad(rows, (0, 0, 1, 1))
    both = padded[..., :-2, :] + 2 * padded[..., 1:-1, :] + padded[..., 2:, :]
    return (both - 4 * field) / 12


def _push_pull(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A smooth fill of the pixels with zero ``weight`` from coarser averages of the known ones (warm start)."""
    if min(values.shape[-2:]) <= 2:
        total = weight.sum(dim=(-2, -1), keepdim=True)
        mean = (values * weight).sum(dim=(-2, -1), keepdim=True) / total.clamp_min(1e-12)
        return torch.where(weight > 0, values, mean.expand_as(values))
    coarse_weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    coarse = F.avg_pool2d(values * weight, 2, ceil_mode=True) / coarse_weight.clamp_min(1e-12)
    filled = _push_pull(coarse, (coarse_weight > 0).to(values.dtype))
    up = F.interpolate(filled, size=tuple(values.shape[-2:]), mode="bilinear", align_corners=False)
    return torch.where(weight > 0, values, up)


def noisy_linear_impute(
    inputs: torch.Tensor, removed: torch.Tensor, noise: float = ROAD_NOISE, noise_seeds: Sequence[int] | None = None
) -> torch.Tensor:
    """ROAD's noisy linear imputation of the ``removed`` pixels of each image (see the module docstring).

    ``inputs`` ``(B, C, H, W)``; ``removed`` bool ``(B, 1, H, W)``. Kept pixels are returned unchanged.
    ``noise_seeds`` (one per image) make the added noise reproducible; None draws no noise.
    """
    x = inputs.detach().float()
    unknown = removed.expand_as(x).float()
    known = 1.0 - unknown
    degree = _neighbour_sum(torch.ones_like(x)) + ROAD_RIDGE  # in-image neighbour weights, + ridge
    rhs = _neighbour_sum(x * known) * unknown

    def apply(field: torch.Tensor) -> torch.Tensor:  # A·v on the unknown pixels (v is zero elsewhere)
        return (degree * field - _neighbour_sum(field)) * unknown

    solution = _push_pull(x * known, known[:, :1].expand_as(x).contiguous()) * unknown
    residual = rhs - apply(solution)
    direction = residual / degree
    rz = (residual * direction).flatten(1).sum(1)
    scale = rhs.flatten(1).norm(dim=1).clamp_min(1e-12)
    active = residual.flatten(1).norm(dim=1) > ROAD_TOLERANCE * scale
    for _ in range(ROAD_MAX_ITERATIONS):
        if not bool(active.any()):
            break
        product = apply(direction)
        curvature = (direction * product).flatten(1).sum(1)
        alpha = torch.where(active & (curvature > 0), rz / curvature.clamp_min(1e-30), torch.zeros_like(rz))
        solution = solution + alpha.view(-1, 1, 1, 1) * direction
        residual = residual - alpha.view(-1, 1, 1, 1) * product
        active = active & (residual.flatten(1).norm(dim=1) > ROAD_TOLERANCE * scale)
        preconditioned = residual / degree
        rz_new = (residual * preconditioned).flatten(1).sum(1)
        beta = torch.where(active, rz_new / rz.clamp_min(1e-30), torch.zeros_like(rz))
        direction = preconditioned + beta.view(-1, 1, 1, 1) * direction
        rz = rz_new
    filled = x * known + solution * unknown
    if noise_seeds is not None and noise > 0:
        draws = torch.stack([torch.randn(x.shape[1:], generator=seeded_generator(int(s))) for s in noise_seeds])
        filled = filled + draws.to(x.device) * noise * unknown
    return filled.to(inputs.dtype)


# ------------------------------------------------------------------------- randomization
def foreground_mask(pixels: torch.Tensor, tolerance: float = 1e-6, border_share: float = 0.5) -> torch.Tensor:
    """Bool ``(N, H, W)``: pixels that differ from the image's constant background colour.

    The background colour is the colour of at least ``border_share`` of the image's border pixels (the
    zero surround of a digit, a flat fill); images without one (photos, noisy images) keep every pixel.
    Background carries no image evidence, yet two unrelated maps agree there (both zero for
    input-times-gradient methods), which inflates their rank correlation.
    """
    if pixels.ndim != 4:
        raise InputError(f"pixels must be (N, C, H, W); got shape {tuple(pixels.shape)}.")
    pixels = pixels.detach().float().cpu()
    border = torch.cat(
        [pixels[:, :, 0, :], pixels[:, :, -1, :], pixels[:, :, 1:-1, 0], pixels[:, :, 1:-1, -1]], dim=2
    ).transpose(1, 2)  # (N, border pixels, C)
    masks = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.bool)
    for i, colours in enumerate(border):
        values, counts = torch.unique(colours, dim=0, return_counts=True)
        if counts.max() < border_share * colours.shape[0]:
            continue
        background = values[counts.argmax()].view(-1, 1, 1)
        mask = (pixels[i] - background).abs().amax(dim=0) > tolerance
        if mask.any():
            masks[i] = mask
    return masks


def rank_correlation(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Spearman rank correlation of two maps (ties get average ranks), over ``mask`` when given.

    Returns NaN when either map is constant over the pixels compared (see :func:`map_similarity`
    for the protocol's always-defined version).
    """
    a, b = a.detach().flatten().double().cpu(), b.detach().flatten().double().cpu()
    if a.shape != b.shape:
        raise InputError(f"Maps to correlate differ in size: {a.numel()} vs {b.numel()} values.")
    if mask is not None:
        keep = mask.detach().flatten().bool().cpu()
        a, b = a[keep], b[keep]
    if a.numel() < 2:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else float("nan")


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    ordered, order = values.sort(stable=True)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = average[inverse]
    return ranks


def map_similarity(original: torch.Tensor, randomized: torch.Tensor, mask: torch.Tensor | None = None
                   ) -> tuple[float, str | None]:
    """The protocol's similarity of a map to its randomized-model map, and the reason when it is a rule.

    Spearman of the two maps over ``mask``; the cases where Spearman is undefined follow the rules in
    the module docstring (vanished → 0, original constant → 0, both constant → 1, too few pixels → 0).
    """
    a, b = original.detach().flatten().double().cpu(), randomized.detach().flatten().double().cpu()
    if mask is not None:
        keep = mask.detach().flatten().bool().cpu()
        a, b = a[keep], b[keep]
    if a.numel() < 2:
        return 0.0, "too few pixels"
    flat_a, flat_b = bool((a == a[0]).all()), bool((b == b[0]).all())
    if flat_a and flat_b:
        return 1.0, "both maps constant"
    if flat_b:
        return 0.0, "randomized map vanished"
    if flat_a:
        return 0.0, "original map constant"
    return rank_correlation(a, b), None


def cascade_units(module: nn.Module) -> list[str]:
    """Top-level blocks of ``module`` that hold parameters, output first.

    Sequential containers at the top (timm ``blocks``, a ViT's transformer blocks) are split into their
    children, so a cascade can stop between stages.
    """
    def has_parameters(part: nn.Module) -> bool:
        return any(True for _ in part.parameters())

    units: list[str] = []
    for name, child in module.named_children():
        if not has_parameters(child):
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            units += [f"{name}.{sub}" for sub, grandchild in child.named_children() if has_parameters(grandchild)]
        else:
            units.append(name)
    return units[::-1]


@dataclass
class CascadeStep:
    """One randomized copy of the model: the lowest unit re-initialized so far ("all" at the end)."""

    name: str
    layers: list[str]
    classifier: Classifier = dataclasses.field(repr=False)


def randomized_cascade(classifier: Classifier, steps: int = RANDOMIZATION_STEPS, seed: int = 0) -> list[CascadeStep]:
    """Copies of the model re-initialized from the output down in ``steps`` cumulative steps (seeded).

    PyTorch's default initialization for every layer that has one, other parameters ~ N(0, 0.02²);
    the draws come from the global generator inside :func:`explainer._plumbing.isolated_rng`, so the
    caller's random state and model are untouched. The same ``seed`` gives the same copies.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"randomization_steps must be a positive integer, got {steps!r}.")
    units = cascade_units(classifier.module)
    if not units:
        raise InputError(f"{classifier.name} has no parameters to randomize; leave out the randomization metric.")
    # from the last unit down, so one step re-initializes everything (linspace(1, n, 1) would stop at the output)
    stops = sorted({round(x) for x in np.linspace(len(units), 1, min(steps, len(units)))})
    randomized = copy.deepcopy(classifier.module)
    cascade: list[CascadeStep] = []
    done = 0
    with isolated_rng(seed), torch.no_grad():
        for stop in stops:
            for name in units[done:stop]:
                _reinitialize(randomized.get_submodule(name))
            if stop == len(units):
                for parameter in randomized.parameters(recurse=False):
                    nn.init.normal_(parameter, std=0.02)
            done = stop
            label = "all" if stop == len(units) else units[stop - 1]
            cascade.append(CascadeStep(label, units[:stop], dataclasses.replace(classifier, module=copy.deepcopy(randomized))))
    return cascade


def _reinitialize(module: nn.Module) -> None:
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            for parameter in sub.parameters(recurse=False):
                nn.init.normal_(parameter, std=0.02)


def randomization_similarities(
    cascade: Sequence[CascadeStep],
    original: torch.Tensor,
    pixels: torch.Tensor,
    explain_on: Callable[[Classifier], torch.Tensor],
) -> list[list[tuple[float, str | None]]]:
    """Per cascade step, per image: (similarity, reason) of ``explain_on(copy)`` maps with ``original``.

    ``original`` ``(N, H, W)`` relevance; ``explain_on(classifier) -> (N, H, W)`` relevance on that model.
    """
    masks = foreground_mask(pixels)
    out = []
    for step in cascade:
        again = explain_on(step.classifier)
        out.append([map_similarity(original[i], again[i], masks[i]) for i in range(original.shape[0])])
    return out


# ------------------------------------------------------------------------- localisation
def mask_share_values(relevance: torch.Tensor, masks: torch.Tensor) -> tuple[np.ndarray, list[str | None]]:
    """Per image: share of relevance mass inside the mask (empty map → area share, reason "empty map")."""
    heat, masks = aligned_masks(relevance, masks)
    total = heat.flatten(1).sum(1)
    inside = (heat * masks).flatten(1).sum(1)
    area = masks.flatten(1).double().mean(1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), area)
    return share.numpy(), ["empty map" if float(t) <= 0 else None for t in total]


def pointing_tolerance(height: int, width: int) -> float:
    """The pointing game's tolerance in pixels: Zhang et al.'s 15 px at 224 px, scaled with the shorter side."""
    return POINTING_TOLERANCE * min(height, width) / POINTING_SIDE


def pointing_game(relevance: torch.Tensor, masks: torch.Tensor, tolerance: float | None = None) -> np.ndarray:
    """Per image: 1 when the maximum of the positive evidence lies within ``tolerance`` px of the mask, else 0.

    ``tolerance`` defaults to :func:`pointing_tolerance`; tied maxima (within a relative 1e-6) score the
    share of them that hit; a map with no positive value scores the share of all pixels that would hit.
    """
    from scipy.ndimage import distance_transform_edt

    heat, masks = aligned_masks(relevance, masks)
    radius = pointing_tolerance(*heat.shape[-2:]) if tolerance is None else float(tolerance)
    near = torch.stack([torch.from_numpy(distance_transform_edt(~m.numpy()) <= radius) if m.any()
                        else torch.zeros(m.shape, dtype=torch.bool) for m in masks]).flatten(1)
    flat = heat.clamp_min(0).flatten(1)
    peak = flat.max(dim=1, keepdim=True).values
    top = (flat >= peak * (1 - 1e-6)) | (flat == peak)
    return ((top & near).sum(1).double() / top.sum(1).double()).numpy()


def aligned_masks(relevance: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, H, W)`` float64 maps and bool masks on the CPU; masks may be ``(N, 1, H, W)``; shapes must match."""
    heat = relevance.detach().double().cpu()
    masks = torch.as_tensor(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or tuple(masks.shape) != tuple(heat.shape):
        raise InputError(
            f"masks must match the maps: expected shape {(heat.shape[0], 1, *heat.shape[1:])} or "
            f"{tuple(heat.shape)}, got {tuple(masks.shape)}. Use a classifier whose input_size equals the image size."
        )
    return heat, masks.bool().cpu()


def gini(relevance: torch.Tensor) -> tuple[np.ndarray, list[str | None]]:
    """Per image: Gini index of the (non-negative) relevance values; an empty map scores 0 ("empty map")."""
    flat = relevance.detach().double().cpu().flatten(1).abs()
    values, _ = flat.sort(dim=1)
    n = values.shape[1]
    k = torch.arange(1, n + 1, dtype=torch.float64)
    total = values.sum(1)
    index = ((2 * k - n - 1) * values).sum(1) / (n * total.clamp_min(1e-300))
    index = torch.where(total > 0, index, torch.zeros_like(index))
    return index.numpy(), ["empty map" if float(t) <= 0 else None for t in total]


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
