"""How a network arranges a dataset: penultimate-layer features projected to 2-D, against raw pixels."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

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

METHODS = ("pca", "tsne")


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
    classifier: Classifier, pixels: torch.Tensor, layer: str | None, batch_size: int
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
) -> Embedding:
    """Project a dataset's penultimate-layer features (the input of the final Linear, or ``layer``'s output)
    to 2-D with PCA or t-SNE, and raw pixels the same way; score both maps with cross-validated k-NN.

    A bare ``nn.Module`` is wrapped with ``Classifier.from_module`` using the dataset's channels and size
    and no normalization (pixels in [0, 1] go in as they are).
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
    features, site = _features(wrapped, pixels, layer, batch_size)
    raw = pixels.flatten(1).numpy()
    coords, feature_variance = _project(features, method, seed)
    pixel_coords, pixel_variance = _project(raw, method, seed)
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
