"""Cascading randomization: seeded re-initialized copies of a model and how similar its maps stay on them."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from explainer.errors import InputError
from explainer.rng import isolated_rng

if TYPE_CHECKING:
    from explainer.models import Classifier

#: Default cascade length of the randomization check.
RANDOMIZATION_STEPS = 4


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
    :mod:`explainer.evidence.metrics` (vanished → 0, original constant → 0, both constant → 1, too few pixels → 0).
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
    the draws come from the global generator inside :func:`explainer.rng.isolated_rng`, so the
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


def cascade_similarities(heat: torch.Tensor, pixels: torch.Tensor, cascade: Sequence[CascadeStep],
                         explain_on: Callable[[Any], torch.Tensor]) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """Similarity of map ``heat`` to the map on each step of one randomized copy, and the map after the last step."""
    steps = []
    masks = foreground_mask(pixels)
    again = heat
    for step in cascade:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = explain_on(step.classifier)
        value, reason = map_similarity(heat[0], again[0], masks[0])
        steps.append({"step": step.name, "similarity": float(value), "reason": reason})
    return steps, again


def null_similarity(randomized: torch.Tensor, pixels: torch.Tensor, other: CascadeStep,
                    explain_on: Callable[[Any], torch.Tensor]) -> float:
    """The randomization metric's null: similarity of the maps on two independently randomized copies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = explain_on(other.classifier)
    return float(map_similarity(randomized[0], again[0], foreground_mask(pixels)[0])[0])
