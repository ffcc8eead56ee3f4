"""How a network arranges a dataset: penultimate-layer features projected to 2-D, against raw pixels."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer.compat import deprecated_alias, legacy_positional
from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.inside.activations import capture, forward_hooks
from explainer.jsonable import JsonResult
from explainer.models import Classifier
from explainer.models.coerce import as_classifier
from explainer.models.layers import feature_layers
from explainer.run.long_call import Estimate, batches, duration, pass_time, passes_estimate, start

METHODS = ("pca", "tsne")
#: Iterations of the short timed t-SNE runs the estimate scales up from (the fewest scikit-learn runs).
TSNE_PROBE_ITERATIONS = 250


@dataclass
class Embedding(JsonResult):
    """A dataset in 2-D twice: through the network's features and as raw pixels, with how well
    a k-NN classifier separates the classes in each 2-D map (cross-validated accuracy)."""

    model_name: str
    layer: str  # where the features were read ("input of classifier" = penultimate layer)
    coords: np.ndarray  # (N, 2) float32, projected features
    pixel_coords: np.ndarray  # (N, 2) float32, projected pixels
    labels: np.ndarray  # (N,) int
    class_names: list[str]
    feature_dim: int
    pixel_dim: int
    method: str
    knn_accuracy: float
    pixel_knn_accuracy: float
    knn_k: int
    folds: int
    explained_variance: tuple[float, float] | None = None  # PCA: share of variance in 2-D (features, pixels)
    split: str = "test"
    seconds: float = 0.0
    device: str = ""
    params: dict = field(default_factory=dict)

    model = deprecated_alias("model", "model_name")

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per space (features, pixels): dimension, k-NN accuracy, variance kept."""
        variance = self.explained_variance or (None, None)
        return pd.DataFrame([
            {"space": self.layer, "dim": self.feature_dim, "knn_accuracy": self.knn_accuracy,
             "explained_variance": variance[0]},
            {"space": "pixels", "dim": self.pixel_dim, "knn_accuracy": self.pixel_knn_accuracy,
             "explained_variance": variance[1]},
        ])


def _final_linear(classifier: Classifier, inputs: torch.Tensor) -> str:
    """Name of the last ``nn.Linear`` that runs: the layer producing the logits (its input is the penultimate layer)."""
    linear = [name for name, sub in classifier.module.named_modules() if name and isinstance(sub, nn.Linear)]
    if not linear:
        raise InputError(
            f"{classifier.name} has no nn.Linear classifier layer; pass layer= naming the layer whose output to embed."
        )
    order: list[str] = []

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, _output: object) -> None:
            order.append(name)

        return hook

    with torch.inference_mode(), eval_mode(classifier.module), \
            forward_hooks(classifier, {name: record(name) for name in linear}):
        classifier.module(inputs[:1])
    if not order:
        raise InputError(f"No nn.Linear layer of {classifier.name} ran; pass layer= explicitly.")
    return order[-1]


def _features(
    classifier: Classifier, pixels: torch.Tensor, layer: str | None, batch_size: int, bar: Any = None
) -> tuple[np.ndarray, str]:
    """Features per image: the final Linear's input by default, else ``layer``'s output (maps and tokens
    averaged over positions)."""
    sample = classifier.normalize(classifier.to_pixels(pixels[:1])).to(classifier.device)
    site, layer_inputs = (_final_linear(classifier, sample), True) if layer is None else (layer, False)
    info = feature_layers(classifier).get(site) if not layer_inputs else None
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            batch = classifier.to_pixels(pixels[start : start + batch_size])
            inputs = classifier.normalize(batch).to(classifier.device)
            output = capture(classifier, inputs, [site], layer_inputs=layer_inputs)[site].float()
            if info is not None:
                output = info.to_grid(output).mean((2, 3))
            chunks.append(output.flatten(1).cpu())
            if bar is not None:
                bar.update(1)
    name = f"input of {site}" if layer_inputs else site
    return torch.cat(chunks).numpy(), name


def _project(values: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, float | None]:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method == "pca":
        pca = PCA(n_components=2, random_state=seed)
        return pca.fit_transform(values).astype(np.float32), float(pca.explained_variance_ratio_.sum())
    perplexity = float(min(30, max(5, (len(values) - 1) // 3)))
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
    return tsne.fit_transform(values).astype(np.float32), None


def _estimate(classifier: Classifier, pixels: torch.Tensor, raw: np.ndarray, method: str, seed: int,
              batch_size: int) -> Estimate:
    """A forward per image (timed on two passes) and, for t-SNE, the two projections (:func:`_tsne_seconds`);
    PCA and the k-NN scoring cost little."""
    forwards = passes_estimate(pass_time(classifier, classifier.to_pixels(pixels[:1]), batch=min(batch_size, len(pixels))),
                               batches(len(pixels), batch_size), "forward", classifier.device)
    if method != "tsne":
        return forwards
    projection = _tsne_seconds(raw, seed)
    return Estimate(forwards.seconds + 2 * projection,
                    f"{forwards.parts} + 2 t-SNE projections of {len(raw)} points × {duration(projection)} (from two "
                    f"short timed t-SNE runs)")


def _tsne_seconds(values: np.ndarray, seed: int) -> float:
    """Seconds of one t-SNE of ``values``: short runs (:data:`TSNE_PROBE_ITERATIONS` iterations) on the first 50 and
    100 rows are timed and fitted as ``fixed + slope × N log N`` (Barnes-Hut's cost per iteration, plus what every
    iteration costs whatever N – large where the CPU is shared), then scaled to the full run (scikit-learn's default iterations)."""
    from sklearn.manifold import TSNE

    count = len(values)
    sizes = sorted({min(count, 50), min(count, 100)})
    defaults = TSNE().get_params()
    iterations = "max_iter" if "max_iter" in defaults else "n_iter"  # scikit-learn < 1.5: n_iter
    full = defaults.get(iterations) or 1000  # what _project runs: scikit-learn's default
    timings = []
    for size in sizes:
        perplexity = float(min(30, max(5, (size - 1) // 3)))
        tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed,
                    **{iterations: TSNE_PROBE_ITERATIONS})
        begun = time.perf_counter()
        tsne.fit_transform(values[:size])
        timings.append(time.perf_counter() - begun)
    work = [size * math.log(size) for size in sizes]
    if len(sizes) == 1:
        fixed, slope = timings[0], 0.0
    else:
        slope = max(0.0, (timings[1] - timings[0]) / (work[1] - work[0]))
        fixed = max(0.0, timings[0] - slope * work[0])
    return (fixed + slope * count * math.log(count)) * full / TSNE_PROBE_ITERATIONS


def _knn_accuracy(coords: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), coords, labels, cv=splitter).mean())


@legacy_positional("layer", "method")
def embed_dataset(
    classifier: Classifier | nn.Module,
    dataset: Dataset,
    *,
    layer: str | None = None,
    method: str = "pca",
    split: str = "test",
    max_samples: int | None = 2000,
    knn_k: int = 5,
    folds: int = 5,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> Embedding:
    """Project a dataset's penultimate-layer features (the input of the final Linear, or ``layer``'s output)
    to 2-D with PCA or t-SNE, and raw pixels the same way; score both maps with cross-validated k-NN.

    A bare ``nn.Module`` is wrapped with ``Classifier.from_module`` using the dataset's channels and size
    and no normalization (pixels in [0, 1] go in as they are). ``progress``: the estimate (a forward per image,
    timed on two passes, and for t-SNE two short t-SNE runs on subsamples, scaled up), then a bar over the stages (each
    batch of forwards, each projection) on stderr; False is silent. ``budget_seconds``: refuse (InputError with
    what to shrink) a call estimated above it; None is no limit.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}.")
    if not isinstance(dataset, Dataset) or not dataset.is_image:
        raise InputError("embed_dataset needs an image Dataset from load_dataset (e.g. 'digits').")
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test'; got {split!r}.")
    wrapped = _as_classifier(classifier, dataset)
    pixels, labels = _sample(dataset, split, max_samples, seed)
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    if smallest < folds or len(labels) <= knn_k:
        raise InputError(
            f"Too few examples for {folds}-fold k-NN scoring (smallest class has {smallest}); use more samples."
        )
    raw = pixels.flatten(1).numpy()
    batches = math.ceil(len(pixels) / batch_size)
    bar = start("embed_dataset", lambda: _estimate(wrapped, pixels, raw, method, seed, batch_size), progress=progress,
                budget_seconds=budget_seconds, total=batches + 2, unit="stage", passes=len(pixels),
                shrink=f"fewer images (max_samples={len(pixels)} now), method='pca' or a smaller network")
    with bar:
        features, site = _features(wrapped, pixels, layer, batch_size, bar)
        coords, feature_variance = _project(features, method, seed)
        bar.update(1)
        pixel_coords, pixel_variance = _project(raw, method, seed)
        bar.update(1)
    return Embedding(
        model_name=wrapped.name,
        layer=site,
        coords=coords,
        pixel_coords=pixel_coords,
        labels=labels.astype(np.int64),
        class_names=list(dataset.class_names),
        feature_dim=int(features.shape[1]),
        pixel_dim=int(raw.shape[1]),
        method=method,
        knn_accuracy=_knn_accuracy(coords, labels, knn_k, folds, seed),
        pixel_knn_accuracy=_knn_accuracy(pixel_coords, labels, knn_k, folds, seed),
        knn_k=knn_k,
        folds=folds,
        explained_variance=None if feature_variance is None or pixel_variance is None
        else (feature_variance, pixel_variance),
        split=split,
        seconds=time.perf_counter() - started,
        device=str(wrapped.device),
        params={"max_samples": max_samples, "seed": seed, "dataset": dataset.name},
    )


def _as_classifier(classifier: Classifier | nn.Module, dataset: Dataset) -> Classifier:
    """The classifier itself, or a bare module wrapped for the dataset's images (no normalization)."""
    wrapped = as_classifier(classifier, dataset=dataset, caller="embed_dataset")
    if dataset.input_shape[0] != wrapped.in_chans:
        raise InputError(
            f"{dataset.name} images have {dataset.input_shape[0]} channel(s) but {wrapped.name} expects "
            f"{wrapped.in_chans}."
        )
    return wrapped


def _sample(dataset: Dataset, split: str, max_samples: int | None, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """The split's pixels and labels, subsampled (seeded, order kept) to at most ``max_samples``."""
    pixels = dataset.x_test if split == "test" else dataset.x_train
    labels = (dataset.y_test if split == "test" else dataset.y_train).numpy()
    if max_samples is not None and len(labels) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(labels), max_samples, replace=False))
        pixels, labels = pixels[torch.from_numpy(keep)], labels[keep]
    return pixels, labels
