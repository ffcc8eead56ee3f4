"""Any ``data`` of an evaluation (paths, images, a Dataset or its name, "samples", a DataLoader) as model pixels."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from explainer.errors import InputError

#: Data names besides load_dataset's: the bundled sample photos.
SAMPLE_PHOTOS = "samples"


@dataclass
class EvaluationData:
    """Images to evaluate as pixels ``(N, C, H, W)`` in [0, 1] at the model's input size, with what is known."""

    pixels: torch.Tensor
    names: list[str]
    labels: list[int] | None = None
    masks: torch.Tensor | None = None  # bool (N, 1, H, W)
    description: str = "images"


def load_evaluation_data(data: Any, classifier: Any, limit: int | None = None) -> EvaluationData:
    """``data`` (paths/images, a Dataset, a dataset name, ``"samples"``, a DataLoader) as pixels for ``classifier``.

    Datasets give their test split with labels (and masks for ``known_answer``); ``limit`` keeps the first
    ``limit`` images.
    """
    from explainer.data.datasets import Dataset, load_dataset

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}.")
    if isinstance(data, str) and data == SAMPLE_PHOTOS:
        from explainer.data.images import sample_images

        photos = sample_images()
        names = list(photos)[:limit]
        return EvaluationData(classifier.to_pixels([photos[n] for n in names]), names, description="sample photos")
    if isinstance(data, str) and (data in _dataset_names() or data.startswith("imagefolder:")):
        data = load_dataset(data)
    if isinstance(data, Dataset):
        if not data.is_image:
            raise InputError(f"{data.name} holds 2-D points, not images; attribution maps need images.")
        x, y = data.x_test[:limit], data.y_test[:limit]
        masks = data.masks_test[:limit] if data.masks_test is not None else None
        return _from_tensors(x, y, masks, classifier, f"{data.name} test split", prefix=data.name)
    if isinstance(data, torch.utils.data.DataLoader):
        xs, ys = [], []
        for batch in data:
            if isinstance(batch, (list, tuple)):
                xs.append(torch.as_tensor(batch[0]))
                ys.append(torch.as_tensor(batch[1]))
            else:
                xs.append(torch.as_tensor(batch))
            if limit is not None and sum(len(t) for t in xs) >= limit:
                break
        if not xs:
            raise InputError("The DataLoader yielded no batches.")
        labels = torch.cat(ys)[:limit] if ys else None
        return _from_tensors(torch.cat(xs)[:limit], labels, None, classifier, "DataLoader", prefix="batch")
    if isinstance(data, torch.Tensor):
        pixels = classifier.to_pixels(data)[:limit]
        return EvaluationData(pixels, [f"image {i}" for i in range(len(pixels))])
    items = [data] if isinstance(data, str) else list(data)
    if not items:
        raise InputError("No images given; pass image paths, a dataset name such as 'digits', or a Dataset.")
    items = items[:limit]
    tensors = [item for item in items if isinstance(item, torch.Tensor)]
    if len(tensors) == len(items):  # pixel tensors (C, H, W) or (1, C, H, W)
        pixels = classifier.to_pixels(torch.cat([item.reshape(-1, *item.shape[-3:]) for item in tensors]))
        return EvaluationData(pixels, [f"image {i}" for i in range(len(pixels))])
    return EvaluationData(classifier.to_pixels(items), [str(item) if isinstance(item, str) else f"image {i}"
                                                        for i, item in enumerate(items)])


def _dataset_names() -> tuple[str, ...]:
    from explainer.data.datasets import IMAGE_SETS, TOY_SETS

    return IMAGE_SETS + TOY_SETS


def _from_tensors(x: torch.Tensor, y: torch.Tensor | None, masks: torch.Tensor | None, classifier: Any,
                  description: str, prefix: str) -> EvaluationData:
    pixels = classifier.to_pixels(x.float())
    if masks is not None and tuple(masks.shape[-2:]) != tuple(pixels.shape[-2:]):
        warnings.warn(f"The masks are {tuple(masks.shape[-2:])} but the model's input is {tuple(pixels.shape[-2:])}; "
                      "mask metrics are left out.", stacklevel=3)
        masks = None
    labels = [int(v) for v in y] if y is not None else None
    return EvaluationData(pixels, [f"{prefix}[{i}]" for i in range(len(pixels))], labels,
                          masks.bool() if masks is not None else None, description)
