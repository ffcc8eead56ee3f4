"""The protocol's perturbation curves – deletion, insertion and ROAD, batched through the model – and their AUC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from explainer.baselines import baseline as reference_image
from explainer.baselines import baseline_name
from explainer.errors import InputError
from explainer.evidence.metrics import (
    CURVES,
    DEFAULT_STEPS,
    INSERTION_BLURS,
    LERF_CURVES,
    MAX_STEPS,
    RISE_KERNEL,
    RISE_SIGMA,
    ROAD_MAX_ITERATIONS,
    ROAD_NOISE,
    ROAD_RIDGE,
    ROAD_TOLERANCE,
)
from explainer.guards import eval_mode
from explainer.rng import seeded_generator

if TYPE_CHECKING:
    from explainer.models import Classifier


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
    """ROAD's noisy linear imputation of the ``removed`` pixels of each image (see :mod:`explainer.evidence.metrics`).

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
