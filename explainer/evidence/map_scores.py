"""Scores of one map on its own: localisation on ground-truth masks (mask share, pointing game) and sparseness."""

from __future__ import annotations

import numpy as np
import torch

from explainer.errors import InputError

#: Zhang et al.'s pointing-game tolerance in pixels at 224 px (scaled with the shorter side).
POINTING_TOLERANCE, POINTING_SIDE = 15.0, 224


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
