"""Concepts a network uses (CRAFT, Fel et al. 2023): NMF of a layer's non-negative activations over image crops.

Each concept is a non-negative direction of the layer's channels; its *importance* for the class is the mean
drop of the target logit over images when the concept's part of the activation (its NMF coefficient × its
direction, at every position) is removed, with a Student-t interval over images (:mod:`explainer.stats`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer import stats
from explainer.errors import InputError
from explainer.guards import user_state_guard
from explainer.inside.activations import capture, first_tensor
from explainer.jsonable import JsonResult
from explainer.models.classifier import Classifier, ImageBatch
from explainer.models.coerce import as_classifier
from explainer.models.layers import describe_layer
from explainer.models.predictions import resolve_targets
from explainer.run.long_call import batches, pass_time, passes_estimate, start

#: Concept extraction methods.
METHODS = ("nmf",)
#: Crops per forward pass when their activations are taken (the bar moves batch by batch).
CROP_BATCH = 32


@dataclass
class Concepts(JsonResult):
    """NMF concepts of ``layer``: ``directions`` ``(k, C)``, crop coefficients ``(crops, k)``, the top crops per
    concept (indices into ``crops``) and each concept's importance for the target with its interval."""

    layer: str
    directions: np.ndarray
    coefficients: np.ndarray
    crops: torch.Tensor  # (crops, C, H, W) pixels
    top_crops: list[list[int]]
    importance: list[stats.Interval]
    drops: np.ndarray  # (images, k) target-logit drop when the concept is removed
    targets: list[int]
    seconds: float = 0.0
    model_name: str = ""

    _not_in_dict = ("crops", "coefficients")

    def summary(self) -> pd.DataFrame:
        """One row per concept: importance (mean logit drop) with its interval."""
        return pd.DataFrame([{"concept": k, "importance": i.mean, "ci_low": i.low, "ci_high": i.high, "n": i.n}
                             for k, i in enumerate(self.importance)])

    def verdict(self) -> str:
        """In words: the most important concept and its interval."""
        best = int(np.nanargmax([i.mean for i in self.importance]))
        interval = self.importance[best]
        spread = (f"95 % interval {interval.low:.3g} to {interval.high:.3g}, {interval.n} images" if interval.n > 1
                  else "1 image: no interval")
        words = f"Concept {best} has the largest mean effect: removing it lowers the target logit by {interval.mean:.3g} ({spread})."
        if not (interval.low > 0):  # NaN (one image) or an interval reaching zero
            words += " That is not shown to differ from no effect – use more images of the class."
        elif not stats.enough(interval.n):
            words += f" Only {interval.n} images: fewer than {stats.MIN_SAMPLES}, so treat it as a hint."
        return words


def grid_crops(pixels: torch.Tensor, grid: int, size: tuple[int, int]) -> torch.Tensor:
    """``grid``×``grid`` non-overlapping crops of each image, resized to ``size`` (crop by crop: all images' first
    crop, then the second, ...)."""
    _n, _c, height, width = pixels.shape
    tiles = []
    for r in range(grid):
        for c in range(grid):
            tile = pixels[:, :, r * height // grid : (r + 1) * height // grid, c * width // grid : (c + 1) * width // grid]
            tiles.append(F.interpolate(tile, size=size, mode="bilinear", align_corners=False))
    return torch.cat(tiles)


def _activations(classifier: Classifier, layer: str, pixels: torch.Tensor) -> torch.Tensor:
    """Non-negative channel maps ``(N, C, h, w)`` of ``layer``."""
    info = describe_layer(classifier, layer)
    with torch.inference_mode():
        output = capture(classifier, classifier.normalize(pixels.to(classifier.device)), [layer])[layer]
    return info.to_grid(output).float().clamp_min(0).cpu()


def concepts(
    classifier: Classifier | nn.Module,
    images: ImageBatch,
    *,
    layer: str,
    n_concepts: int = 10,
    method: str = "nmf",
    target: Any = None,
    grid: int = 2,
    top_k: int = 6,
    seed: int = 0,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> Concepts:
    """CRAFT-style concepts: NMF (scikit-learn) of ``layer``'s activations (spatially pooled, non-negative)
    over ``grid``×``grid`` crops of ``images`` (resized to the input size); importance by concept ablation.

    It costs ``images × (grid² + 2 + n_concepts)`` forward passes. ``progress``: the estimate (those passes, from
    two timed passes), then a bar over them on stderr; False is silent. ``budget_seconds``: refuse (InputError with
    what to shrink) a call estimated above it; None is no limit."""
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="concepts")
    if method not in METHODS:
        raise InputError(f"Unknown concept method {method!r}; choose one of {', '.join(METHODS)}.")
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise InputError(f"grid must be a whole number ≥ 1 (crops per side), got {grid!r}.")
    channels = describe_layer(classifier, layer).channels
    if isinstance(n_concepts, bool) or not isinstance(n_concepts, (int, np.integer)) or not 1 <= n_concepts <= channels:
        raise InputError(f"n_concepts must be from 1 to {channels} (the layer's channels).")
    pixels = classifier.to_pixels(images)
    count = int(pixels.shape[0])
    forwards = count * (grid * grid + 2 + n_concepts)
    sizes = batches(count * grid * grid, CROP_BATCH) + [count] * (2 + n_concepts)  # crops; images, logits, ablations
    bar = start("concepts", lambda: passes_estimate(
        pass_time(classifier, pixels, batch=max(sizes)), sizes, "forward", classifier.device,
        detail=f"{count} image(s) × ({grid}×{grid} crops + 2 + {n_concepts} concept ablations)"),
        progress=progress, budget_seconds=budget_seconds, total=forwards, unit="forward", passes=forwards,
        shrink=f"fewer images ({count} now), a smaller grid (grid={grid} now) or fewer concepts "
               f"(n_concepts={n_concepts} now)")
    crops = grid_crops(pixels, grid, classifier.input_size)
    with bar, user_state_guard(classifier.module):
        pooled = []
        for chunk in crops.split(CROP_BATCH):
            pooled.append(_activations(classifier, layer, chunk).mean((2, 3)))
            bar.update(len(chunk))
        crop_acts = torch.cat(pooled).numpy()
        from sklearn.decomposition import NMF  # scikit-learn costs ~0.5 s at import: on first use

        model = NMF(n_components=n_concepts, init="nndsvda", max_iter=500, random_state=seed)
        coefficients = model.fit_transform(crop_acts)
        directions = model.components_
        image_acts = _activations(classifier, layer, pixels)
        inputs = classifier.preprocess(pixels)
        with torch.inference_mode():
            base = classifier.module(inputs).float()
        bar.update(2 * count)
        targets = resolve_targets(classifier, target, base)
        drops = np.zeros((count, n_concepts))
        all_maps = concept_maps(directions, image_acts)  # (N, k, h, w)
        for k in range(n_concepts):
            maps = all_maps[:, k]
            part = torch.as_tensor(directions[k], dtype=torch.float32)[None, :, None, None] * maps[:, None]
            logits = _forward_without(classifier, layer, inputs, part)
            drops[:, k] = (base - logits)[torch.arange(len(targets)), targets].numpy()
            bar.update(count)
    return Concepts(
        layer=layer, directions=directions, coefficients=coefficients, crops=crops,
        top_crops=[list(np.argsort(-coefficients[:, k])[:top_k]) for k in range(n_concepts)],
        importance=[stats.mean_interval(drops[:, k]) for k in range(n_concepts)], drops=drops, targets=targets,
        seconds=time.perf_counter() - started, model_name=classifier.name,
    )


def concept_maps(directions: np.ndarray, activations: torch.Tensor) -> torch.Tensor:
    """Each concept's coefficient at every position ``(N, k, h, w)``: non-negative least squares of the channel
    vectors on the concept directions (a few projected-gradient steps)."""
    basis = torch.as_tensor(directions, dtype=torch.float32)  # (k, C)
    n, c, h, w = activations.shape
    vectors = activations.permute(0, 2, 3, 1).reshape(-1, c)
    gram = basis @ basis.T
    step = 1.0 / float(torch.linalg.matrix_norm(gram, ord=2).clamp_min(1e-12))
    coeffs = (vectors @ basis.T).clamp_min(0) * step
    for _ in range(100):
        coeffs = (coeffs - step * (coeffs @ gram - vectors @ basis.T)).clamp_min(0)
    return coeffs.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def _forward_without(classifier: Classifier, layer: str, inputs: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Logits with ``part`` (a ``(N, C, h, w)`` map) subtracted from ``layer``'s output (spatial layers)."""
    info = describe_layer(classifier, layer)

    def hook(_module: nn.Module, _args: object, output: object) -> object:
        tensor = first_tensor(output, layer)
        if info.kind != "spatial":
            grid = part.flatten(2).transpose(1, 2).to(tensor)
            changed = tensor.clone()
            changed[:, info.prefix_tokens :] = tensor[:, info.prefix_tokens :] - grid
            return changed
        return tensor - part.to(tensor)

    handle = classifier.get_layer(layer).register_forward_hook(hook)
    try:
        with torch.inference_mode():
            return classifier.module(inputs).float().cpu()
    finally:
        handle.remove()
