"""Causal activation patching: which layer (channel, position, token) of a network carries the answer.

Run a corrupted input, replace one *site*'s activation (a whole layer's output, one channel, one spatial
position or one ViT token) with the clean input's, and measure how much of the clean–corrupted gap of the
target logit comes back (Meng et al. 2022; Heimersheim & Nanda 2024, "How to use and interpret activation
patching")::

    restored = (m(patched) − m(corrupted)) / (m(clean) − m(corrupted)),   m = logit of the target class

1 means the site alone carries everything the corruption took away, 0 that it carries none of it. Pairs
whose gap is below :data:`MIN_GAP` (the corruption did not move the logit) give NaN and are left out of
the intervals. Over many pairs each site gets the mean restored fraction with a Student-t interval
(:func:`explainer.stats.mean_interval`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer import stats
from explainer.baselines import blur_sigma
from explainer.errors import InputError
from explainer.guards import user_state_guard
from explainer.inside.activations import first_tensor
from explainer.jsonable import JsonResult, headline
from explainer.models.classifier import Classifier, ImageBatch
from explainer.models.coerce import as_classifier
from explainer.models.layers import LayerInfo, describe_layer, feature_layers, find_cam_layer
from explainer.models.predictions import resolve_targets
from explainer.rng import seeded_generator
from explainer.run.long_call import batches, pass_time, passes_estimate, start

#: Site granularities: a whole layer, one channel of a layer, one spatial position / token of a layer.
GRANULARITIES = ("layer", "channel", "position")
#: Ways :func:`corrupt` makes a corrupted copy.
CORRUPTIONS = ("blur", "noise", "fill", "image")
#: Pairs whose clean – corrupted logit gap is smaller than this give NaN (the ratio would be noise).
MIN_GAP = 1e-3
#: A mean restored fraction at least this high counts as "restores everything".
FULL = 0.99
#: Patched forwards per batch when ``batch_size`` is None: 32 on a GPU; on a CPU bigger batches did not pay
#: (155 layers × 4 pairs of the bundled model, 1 thread: batch 1 32.4 s, 8 35.3 s, 32 51.5 s; 2 threads: 1 28.6 s,
#: 8 25.2 s – ``benchmarks/mechanisms.py`` compares with a hand-written hook loop).
DEFAULT_BATCH = 32
CPU_BATCH = 8


# ---------------------------------------------------------------------------------- corruption
def corrupt(
    classifier: Classifier,
    images: ImageBatch,
    how: str = "blur",
    *,
    region: torch.Tensor | np.ndarray | None = None,
    other: ImageBatch | None = None,
    noise: float = 0.3,
    seed: int = 0,
) -> torch.Tensor:
    """A corrupted copy of ``images`` as pixels in [0, 1] ``(N, C, H, W)``.

    ``how``: ``"blur"`` (Gaussian blur, sigma = 1/20 of the shorter side ×4), ``"noise"`` (Gaussian noise of
    std ``noise``, seeded), ``"fill"`` (the image's mean colour outside the region) or ``"image"`` (``other``,
    another image, e.g. of another class). ``region`` (a boolean ``(H, W)`` or ``(N, H, W)`` mask at the input
    size) limits the corruption to those pixels; without it the whole image is corrupted.
    """
    if how not in CORRUPTIONS:
        raise InputError(f"Unknown corruption {how!r}; choose one of {', '.join(CORRUPTIONS)}.")
    pixels = classifier.to_pixels(images)
    count, channels, height, width = pixels.shape
    mask = _pixel_region(region, count, height, width)
    if how == "blur":
        sigma = 4 * blur_sigma(height, width)
        radius = max(1, int(math.ceil(3 * sigma)))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
        flat = F.pad(pixels, (radius, radius, 0, 0), mode="replicate")
        flat = F.conv2d(flat, kernel, groups=channels)
        flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
        changed = F.conv2d(flat, kernel.transpose(2, 3), groups=channels)
    elif how == "noise":
        changed = pixels + noise * torch.randn(pixels.shape, generator=seeded_generator(seed))
    elif how == "fill":
        outside = ~mask if mask is not None else torch.ones(count, 1, height, width, dtype=torch.bool)
        weights = outside.float()
        colour = (pixels * weights).sum((2, 3), keepdim=True) / weights.sum((2, 3), keepdim=True).clamp_min(1.0)
        changed = colour.expand_as(pixels)
    else:
        if other is None:
            raise InputError("corrupt(..., how='image') needs other=: the image(s) to put in place of the clean one.")
        changed = classifier.to_pixels(other)
        if changed.shape[0] == 1 and count > 1:
            changed = changed.expand_as(pixels)
        if changed.shape != pixels.shape:
            raise InputError(f"other= has {changed.shape[0]} image(s) for {count} clean image(s); give one or one each.")
    changed = changed.clamp(0, 1)
    return changed if mask is None else torch.where(mask, changed, pixels)


def _pixel_region(region: torch.Tensor | np.ndarray | None, count: int, height: int, width: int) -> torch.Tensor | None:
    """``region`` as a boolean ``(N, 1, H, W)`` mask (None stays None)."""
    if region is None:
        return None
    mask = torch.as_tensor(np.asarray(region)).bool()
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4 or tuple(mask.shape[-2:]) != (height, width):
        raise InputError(f"region must be a boolean (H, W) or (N, H, W) mask of {height}×{width} pixels; "
                         f"got shape {tuple(np.asarray(region).shape)}.")
    if mask.shape[0] not in (1, count):
        raise InputError(f"region has {mask.shape[0]} masks for {count} image(s); give one or one per image.")
    return mask.expand(count, 1, height, width)


# -------------------------------------------------------------------------------------- result
@dataclass
class PatchResult(JsonResult):
    """Restored fraction of the target logit's clean – corrupted gap for each site, over pairs.

    ``restored`` is ``(pairs, sites)`` (NaN where a pair's gap is below :data:`MIN_GAP`); ``intervals`` the mean
    over pairs per site with its Student-t interval. ``sites`` name each site (``layer``, ``layer[c]`` for a
    channel, ``layer@(row, col)`` for a position, ``layer#t`` for a token); ``grid`` is the layer's (rows, cols)
    for positions, so :meth:`site_map` can draw them.
    """

    granularity: str
    layers: list[str]
    sites: list[str]
    restored: np.ndarray
    intervals: list[stats.Interval]
    targets: list[int]
    target_labels: list[str]
    clean_logit: np.ndarray  # (pairs,) target logit on the clean input
    corrupted_logit: np.ndarray  # (pairs,)
    grid: tuple[int, int] | None = None
    prefix_tokens: int = 0
    forwards: int = 0
    batch_size: int = DEFAULT_BATCH
    seconds: float = 0.0
    device: str = ""
    model_name: str = ""
    metric: str = "target logit"
    region: bool = False
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

    _not_in_dict = ("_extra",)

    @property
    def pairs(self) -> int:
        return int(self.restored.shape[0])

    @property
    def means(self) -> np.ndarray:
        """Mean restored fraction per site (NaN where no pair counts)."""
        return np.array([interval.mean for interval in self.intervals])

    @headline
    def best_site(self) -> str:
        """The site with the highest mean restored fraction (ties: the first)."""
        means = self.means
        return self.sites[int(np.nanargmax(means))] if np.isfinite(means).any() else ""

    def site_map(self) -> np.ndarray:
        """Channel or position means as an array: ``(C,)`` for channels, the ``grid`` for positions
        (ViT prefix tokens left out)."""
        means = self.means
        if self.granularity == "position" and self.grid is not None:
            return means[self.prefix_tokens :].reshape(self.grid)
        return means

    def summary(self) -> pd.DataFrame:
        """One row per site: mean restored fraction, its interval and how many pairs count."""
        return pd.DataFrame([{"site": site, "restored": interval.mean, "ci_low": interval.low,
                              "ci_high": interval.high, "n": interval.n}
                             for site, interval in zip(self.sites, self.intervals)])

    def verdict(self) -> str:
        """In words: where the answer lives, with the interval and how many pairs back it."""
        if not self.sites or not np.isfinite(self.means).any():
            return (f"No pair had a clean – corrupted gap of the {self.metric} above {MIN_GAP}: the corruption did not "
                    "change the answer, so patching cannot show where it lives; corrupt more of the image.")
        best = self.intervals[self.sites.index(self.best_site)]
        spread = (f"95 % interval {best.low:.0%} to {best.high:.0%}, {best.n} pairs" if best.n > 1
                  else "1 pair: no interval")
        words = f"Patching {self.best_site} restores {best.mean:.0%} of the {self.metric}'s clean – corrupted gap ({spread})."
        complete = int(np.sum(self.means >= FULL))
        if complete > 1:
            words += (f" {complete} of {len(self.sites)} sites restore at least {FULL:.0%}: the whole effect of the "
                      "corruption flows through each of them (a path every signal takes), so none is singled out.")
        if not stats.enough(best.n):
            words += f" Only {best.n} pair(s): fewer than {stats.MIN_SAMPLES}, so treat it as a hint."
        return words


# ------------------------------------------------------------------------------------- patching
@dataclass(frozen=True)
class _Site:
    layer: str
    index: int | None  # channel / position / token index; None = the whole layer (within the region)
    label: str


def _layer_sites(classifier: Classifier, layers: Sequence[str] | str | None, granularity: str) -> list[LayerInfo]:
    if granularity not in GRANULARITIES:
        raise InputError(f"Unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}.")
    if isinstance(layers, str):
        layers = [layers]
    if layers is None:
        infos = [find_cam_layer(classifier)] if granularity != "layer" else list(feature_layers(classifier).values())
    else:
        infos = [describe_layer(classifier, name) for name in layers]
    if not infos:
        raise InputError("No layers to patch; give layers=[...] names from explainer.models.layers.feature_layers.")
    if granularity != "layer" and len(infos) != 1:
        raise InputError(f"granularity={granularity!r} patches the channels/positions of one layer; give one layer, "
                         f"not {len(infos)}.")
    return infos


def _sites(infos: list[LayerInfo], granularity: str) -> list[_Site]:
    if granularity == "layer":
        return [_Site(info.name, None, info.name) for info in infos]
    info = infos[0]
    if granularity == "channel":
        return [_Site(info.name, c, f"{info.name}[{c}]") for c in range(info.channels)]
    if info.kind == "tokens":
        total = info.prefix_tokens + info.grid[0] * info.grid[1]
        return [_Site(info.name, t, f"{info.name}#{t}") for t in range(total)]
    rows, cols = info.grid
    return [_Site(info.name, r * cols + c, f"{info.name}@({r}, {c})") for r in range(rows) for c in range(cols)]


def _site_mask(info: LayerInfo, site: _Site, granularity: str, shape: torch.Size,
               region: torch.Tensor | None) -> torch.Tensor:
    """Boolean mask broadcastable to one sample's output ``shape`` (no batch dim) selecting the site."""
    mask = torch.zeros(shape, dtype=torch.bool)
    if granularity == "channel":
        if info.kind == "spatial":
            mask[site.index] = True
        else:
            mask[:, site.index] = True
        return mask
    if granularity == "position" and site.index is not None:
        if info.kind == "spatial":
            mask[:, site.index // info.grid[1], site.index % info.grid[1]] = True
        else:
            mask[site.index] = True
        return mask
    if region is None:
        return torch.ones(shape, dtype=torch.bool)
    grid = F.adaptive_max_pool2d(region.float()[None, None], info.grid)[0, 0].bool()
    if info.kind == "spatial":
        return grid[None].expand(shape).clone()
    tokens = torch.zeros(shape[0], dtype=torch.bool)
    tokens[info.prefix_tokens :] = grid.flatten()
    return tokens[:, None].expand(shape).clone()


def patch(
    classifier: Classifier | nn.Module,
    clean: ImageBatch,
    corrupted: ImageBatch,
    *,
    layers: Sequence[str] | str | None = None,
    granularity: str = "layer",
    target: Any = None,
    batch_size: int | None = None,
    region: torch.Tensor | np.ndarray | None = None,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> PatchResult:
    """Activation patching: for each site, run ``corrupted`` with that site's activation taken from ``clean``
    and report the restored fraction of the target logit's gap (see the module docstring).

    ``clean`` / ``corrupted``: the same number of images (pairs; make corrupted copies with :func:`corrupt`).
    ``layers``: None patches every feature layer (``granularity="layer"``) or the CAM layer's channels /
    positions; ``granularity="channel"|"position"`` takes one layer (positions of a ViT layer are its tokens,
    class token first). ``target``: the class whose logit is measured (default: each clean image's prediction).
    ``region``: a boolean pixel mask ``(H, W)``; with ``granularity="layer"`` only the layer's positions that
    overlap it are patched (e.g. the region a corruption changed). One forward per site and pair, batched
    ``batch_size`` at a time; results do not depend on ``batch_size``. The model runs in eval mode under the
    user-state guards: hooks, ``training`` flags, weights and gradients are as they were. ``progress``: the
    estimate (the forwards, from two timed passes), then a bar over the patched forwards on stderr; False is silent.
    ``budget_seconds``: refuse (InputError with what to shrink) a call estimated above it; None is no limit.
    """
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="patch")
    if batch_size is None:
        batch_size = CPU_BATCH if classifier.device.type == "cpu" else DEFAULT_BATCH
    batch_size = int(batch_size)
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.")
    clean_inputs = classifier.preprocess(clean)
    corrupted_inputs = classifier.preprocess(corrupted)
    if clean_inputs.shape != corrupted_inputs.shape:
        raise InputError(f"clean has {clean_inputs.shape[0]} image(s) and corrupted {corrupted_inputs.shape[0]}: "
                         "patching needs pairs, one corrupted copy per clean image.")
    infos = _layer_sites(classifier, layers, granularity)
    sites = _sites(infos, granularity)
    pairs = int(clean_inputs.shape[0])
    height, width = clean_inputs.shape[-2:]
    region_mask = None
    if region is not None:
        mask = _pixel_region(region, 1, int(height), int(width))
        region_mask = None if mask is None else mask[0, 0]
    jobs = [(p, s) for s in range(len(sites)) for p in range(pairs)]
    bar = start("patch", lambda: passes_estimate(
        pass_time(classifier, classifier.to_pixels(clean), batch=max(pairs, min(batch_size, len(jobs)))),
        [pairs, pairs, *batches(len(jobs), batch_size)],
        "forward", classifier.device,
        detail=f"{len(sites)} site(s) × {pairs} pair(s) patched + the clean and corrupted runs, batches of {batch_size}"),
        progress=progress, budget_seconds=budget_seconds, total=len(jobs), unit="forward",
        passes=len(jobs) + 2 * pairs,
        shrink=f"fewer pairs ({pairs} now), fewer layers or a coarser granularity (granularity={granularity!r} now: "
               f"{len(sites)} site(s))")
    module = classifier.module
    with bar, user_state_guard(module), torch.inference_mode():
        clean_logits, clean_acts = _run(classifier, clean_inputs, [info.name for info in infos])
        corrupted_logits, corrupted_acts = _run(classifier, corrupted_inputs, [info.name for info in infos])
        targets = resolve_targets(classifier, target, clean_logits)
        rows = torch.arange(pairs)
        index = torch.tensor(targets)
        clean_m = clean_logits[rows, index].double()
        corrupted_m = corrupted_logits[rows, index].double()
        by_name = {info.name: info for info in infos}
        masks = {site.label: _site_mask(by_name[site.layer], site, granularity, clean_acts[site.layer].shape[1:],
                                        region_mask) for site in sites}
        patched = torch.full((pairs, len(sites)), math.nan, dtype=torch.float64)
        for begin in range(0, len(jobs), batch_size):
            chunk = jobs[begin : begin + batch_size]
            logits = _patched_forward(classifier, corrupted_inputs, clean_acts, sites, masks, chunk)
            for row, (p, s) in enumerate(chunk):
                patched[p, s] = float(logits[row, targets[p]])
            bar.update(len(chunk))
    gap = (clean_m - corrupted_m)[:, None]
    restored = ((patched - corrupted_m[:, None]) / gap).numpy()
    restored[(gap.abs() < MIN_GAP).expand_as(patched).numpy()] = math.nan
    intervals = [stats.mean_interval(restored[:, s]) if np.isfinite(restored[:, s]).any()
                 else stats.Interval(math.nan, math.nan, math.nan, 0) for s in range(len(sites))]
    first = infos[0]
    return PatchResult(
        granularity=granularity,
        layers=[info.name for info in infos],
        sites=[site.label for site in sites],
        restored=restored,
        intervals=intervals,
        targets=targets,
        target_labels=[classifier.labels[t] for t in targets],
        clean_logit=clean_m.numpy(),
        corrupted_logit=corrupted_m.numpy(),
        grid=first.grid if granularity == "position" else None,
        prefix_tokens=first.prefix_tokens if granularity == "position" else 0,
        forwards=2 + len(jobs),
        batch_size=batch_size,
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
        model_name=classifier.name,
        region=region_mask is not None,
    )


def _run(classifier: Classifier, inputs: torch.Tensor, names: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the first output of each layer in ``names`` for one forward of ``inputs``."""
    captured: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _args: object, output: object) -> None:
            if name not in captured:
                captured[name] = first_tensor(output, name).detach().clone()

        return hook

    handles = [classifier.get_layer(name).register_forward_hook(record(name)) for name in names]
    try:
        logits = classifier.module(inputs).float()
    finally:
        for handle in handles:
            handle.remove()
    return logits, captured


def _patched_forward(
    classifier: Classifier, corrupted: torch.Tensor, clean_acts: dict[str, torch.Tensor], sites: list[_Site],
    masks: dict[str, torch.Tensor], chunk: list[tuple[int, int]],
) -> torch.Tensor:
    """Logits of one batch: row ``i`` is corrupted pair ``chunk[i][0]`` with site ``chunk[i][1]`` patched."""
    pair_index = torch.tensor([p for p, _ in chunk], device=corrupted.device)
    by_layer: dict[str, list[int]] = {}
    for row, (_p, s) in enumerate(chunk):
        by_layer.setdefault(sites[s].layer, []).append(row)

    def replace(name: str, rows: list[int]) -> Callable[[nn.Module, object, object], object]:
        row_index = torch.tensor(rows, device=corrupted.device)
        source = clean_acts[name][pair_index[row_index]]
        mask = torch.stack([masks[sites[chunk[row][1]].label] for row in rows]).to(corrupted.device)
        whole_batch, full = rows == list(range(len(chunk))), bool(mask.all())
        done = [False]

        def hook(_module: nn.Module, _args: object, output: object) -> object:
            if done[0]:
                return None
            done[0] = True
            tensor = first_tensor(output, name)
            if whole_batch:  # every row patched here: a new tensor without copying the corrupted one first
                changed = source.to(tensor.dtype) if full else torch.where(mask, source.to(tensor.dtype), tensor)
            else:
                changed = tensor.clone()
                changed[row_index] = torch.where(mask, source.to(tensor.dtype), tensor[row_index])
            if isinstance(output, torch.Tensor):
                return changed
            return (changed, *list(output)[1:])  # type: ignore[call-overload]

        return hook

    handles = [classifier.get_layer(name).register_forward_hook(replace(name, rows)) for name, rows in by_layer.items()]
    try:
        return classifier.module(corrupted[pair_index]).float()
    finally:
        for handle in handles:
            handle.remove()
