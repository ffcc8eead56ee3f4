"""Is a feature picture trustworthy? The optimized image of a channel checked against natural exemplars.

Feature visualization can be fooled (Geirhos et al. 2024): an optimized image may excite a channel through a
pattern no natural image has. Two numbers say whether the picture shows what the channel responds to in
real images:

* ``reach`` – the picture's activation (the channel's mean over positions) ÷ the mean activation of the
  channel's top natural exemplars: below 1 the picture does not even reach what real images reach;
* ``agreement`` – whether the rest of the layer sees the picture as one of the channel's exemplars: the cosine
  similarity of the layer's spatially pooled activations *without the channel itself* between the picture and
  each exemplar, minus its mean similarity to the exemplar's own group of other images (the non-top images
  dealt at random, seeded, into ``top_k`` disjoint groups) – ``top_k`` independent pairs, compared with
  :func:`explainer.stats.compare`. An optimized image is unlike every natural image; the question
  is whether it is *more* like the channel's exemplars than like ordinary images.

The picture is called trustworthy only when it reaches the exemplars (``reach >= 1``) and is more like them
than like other images (interval above 0, at least :data:`explainer.stats.MIN_SAMPLES` pairs).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F

from explainer import stats
from explainer.data.datasets import Dataset
from explainer.data.images import sample_images
from explainer.errors import InputError
from explainer.inside.activations import as_maps, capture, check_channel
from explainer.inside.concepts import grid_crops
from explainer.inside.features import TopActivating, _as_items
from explainer.jsonable import JsonResult, headline
from explainer.rng import seeded_generator

if TYPE_CHECKING:
    from explainer.inside.features import FeatureVisualization
    from explainer.models import Classifier, ImageBatch

#: Crops per side cut from each bundled sample photo when no exemplar images are given (6 photos → 54 crops).
DEFAULT_GRID = 3
#: The name of the channel's exemplars in the agreement's comparison.
EXEMPLARS = "the channel's exemplars"


@dataclass
class FeatureCheck(JsonResult):
    """The picture against the channel's natural exemplars (see the module docstring)."""

    layer: str
    channel: int
    picture_activation: float
    exemplar_activation: float  # mean over the top exemplars
    picture_similarity: float  # mean cosine (other channels) of the picture to the exemplars
    control_similarity: float  # mean cosine of the picture to the other (non-top) images
    agreement: stats.Comparison  # exemplars vs other images, in similarity to the picture
    exemplars: TopActivating
    searched: int
    seconds: float = 0.0

    _not_in_dict = ("exemplars", "agreement")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the numbers, the agreement's comparison, the exemplars (without pixels) and the verdict."""
        return {**super().to_dict(), "agreement": self.agreement.to_dict(), "exemplars": self.exemplars.to_dict(),
                "verdict": self.verdict()}

    @headline
    def reach(self) -> float:
        """Picture activation ÷ the exemplars' mean activation (≥ 1: the picture reaches what real images do)."""
        return self.picture_activation / self.exemplar_activation if self.exemplar_activation > 0 else float("inf")

    @headline
    def trustworthy(self) -> bool:
        """True when the picture reaches its exemplars and is more like them than like other images."""
        return self.reach >= 1.0 and self.agreement.winner == EXEMPLARS

    def summary(self) -> pd.DataFrame:
        """The headline numbers in one row."""
        difference = self.agreement.difference
        return pd.DataFrame([{"layer": self.layer, "channel": self.channel, "reach": self.reach,
                              "picture_similarity": self.picture_similarity,
                              "control_similarity": self.control_similarity, "agreement": difference.mean,
                              "ci_low": difference.low, "ci_high": difference.high, "n": difference.n,
                              "trustworthy": self.trustworthy}])

    def verdict(self) -> str:
        """In words: whether to trust the picture, and why (not)."""
        reach = (f"The picture excites {self.layer} channel {self.channel} {self.reach:.2f}× as much as its "
                 f"{len(self.exemplars.indices)} strongest natural exemplars (of {self.searched} images)")
        agree = f"In the rest of the layer, similarity to the picture: {self.agreement.words()}"
        if self.trustworthy:
            return f"{reach}. {agree} Trust it as a picture of this channel."
        why = [] if self.reach >= 1.0 else ["it does not reach the exemplars' activation"]
        if self.agreement.winner != EXEMPLARS:
            why.append("the rest of the layer does not see it as more like the exemplars than like other images")
        return f"{reach}. {agree} Do not trust it as a picture of this channel: {' and '.join(why)}."


def _pooled(classifier: Classifier, layer: str, pixels: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """``(N, C, h, w)`` channel maps of ``layer`` for pixels in [0, 1], batch by batch, on the CPU."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            chunk = classifier.normalize(pixels[start : start + batch_size].to(classifier.device))
            out.append(as_maps(classifier, layer, capture(classifier, chunk, [layer])[layer].float()).cpu())
    return torch.cat(out)


def _cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(len(a), len(b))`` cosine similarities of row vectors."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def default_exemplar_images(classifier: Classifier, grid: int = DEFAULT_GRID) -> torch.Tensor:
    """Natural images to search: ``grid``×``grid`` crops of the bundled sample photos at the input size."""
    return _photo_crops(classifier, grid)[0]


def _photo_crops(classifier: Classifier, grid: int) -> tuple[torch.Tensor, list[str]]:
    """The crops of the bundled photos and a name for each ("cat crop 2")."""
    photos = sample_images()
    crops = grid_crops(classifier.to_pixels(list(photos.values())), grid, classifier.input_size)
    names = list(photos)
    return crops, [f"{names[i % len(names)]} crop {i // len(names) + 1}" for i in range(len(crops))]


def check_feature_picture(
    classifier: Classifier,
    visualization: FeatureVisualization,
    exemplars: ImageBatch | Dataset | Mapping | None = None,
    *,
    top_k: int = 9,
    seed: int = 0,
) -> FeatureCheck:
    """Check ``visualization`` (from :func:`visualize_channel`) against the channel's ``top_k`` natural
    exemplars among ``exemplars`` (default: crops of the bundled photos) and the other images, dealt into
    groups with ``seed``. Activations are the channel's mean over positions, every image resized to the picture's size."""
    started = time.perf_counter()
    layer, channel = visualization.layer, visualization.channel
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 2:
        raise InputError(f"top_k must be a whole number ≥ 2 (the agreement needs exemplars to pair), got {top_k!r}.")
    if exemplars is None:
        pixels, names = _photo_crops(classifier, DEFAULT_GRID)
    else:
        items, names = _as_items(exemplars)
        pixels = classifier.to_pixels(items)
    if len(pixels) < 2 * top_k:
        raise InputError(f"Checking a feature picture needs at least 2 × top_k = {2 * top_k} images (the top {top_k} "
                         f"and as many others), got {len(pixels)}; pass more images or a smaller top_k.")
    size = tuple(visualization.image.shape[-2:])  # the picture's scale: a channel's mean depends on the image size
    if tuple(pixels.shape[-2:]) != size:
        pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    maps = _pooled(classifier, layer, pixels)
    check_channel(maps.shape[1], channel, layer)
    scores = maps[:, channel].flatten(1).mean(1)
    order = torch.argsort(-scores, stable=True)
    top, rest = order[:top_k], order[top_k:]
    per_pair = len(rest) // top_k  # each exemplar gets its own disjoint group of other images: independent pairs
    groups = rest[torch.randperm(len(rest), generator=seeded_generator(seed))[: per_pair * top_k]].reshape(top_k, per_pair)
    others = [c for c in range(maps.shape[1]) if c != channel]
    vectors = maps[:, others].mean((2, 3))
    picture = _pooled(classifier, layer, visualization.image[None].clamp(0, 1))
    picture_vector = picture[:, others].mean((2, 3))
    to_picture = _cosines(vectors[top], picture_vector)[:, 0]  # (top_k,)
    to_controls = _cosines(vectors[groups.ravel()], picture_vector)[:, 0].reshape(top_k, per_pair).mean(1)
    agreement = stats.compare(EXEMPLARS, to_picture.numpy(), "other images", to_controls.numpy(),
                              higher_is_better=True, over="pairs")
    chosen = pixels[top]
    upsampled = F.interpolate(maps[top][:, channel : channel + 1], size=chosen.shape[-2:], mode="bilinear",
                              align_corners=False)[:, 0]
    found = TopActivating(
        layer=layer, channel=int(channel), indices=top.tolist(), names=[names[i] for i in top.tolist()],
        scores=scores[top].numpy(), pixels=chosen, maps=upsampled, all_scores=scores.numpy(), score="mean",
        seconds=time.perf_counter() - started, device=str(classifier.device), model_name=classifier.name,
    )
    return FeatureCheck(
        layer=layer, channel=int(channel), picture_activation=float(picture[0, channel].mean()),
        exemplar_activation=float(scores[top].mean()), picture_similarity=float(to_picture.mean()),
        control_similarity=float(to_controls.mean()), agreement=agreement, exemplars=found,
        searched=len(pixels), seconds=time.perf_counter() - started,
    )

