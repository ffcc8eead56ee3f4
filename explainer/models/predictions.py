"""What a classifier predicts and which class to explain: :class:`Prediction`, :func:`top_k` (the most
probable classes) and :func:`resolve_targets` (one class index per image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from explainer.errors import InputError

if TYPE_CHECKING:
    from explainer.models.classifier import Classifier

Target = int | str | Sequence[int | str] | torch.Tensor | np.ndarray | None


@dataclass(frozen=True)
class Prediction:
    """One class of a prediction: its label, index and softmax probability."""

    label: str
    index: int
    probability: float


def top_k(probabilities: torch.Tensor, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each row of ``probabilities`` ``(N, classes)``, best first.

    ``k`` is capped at the number of classes; below 1 raises InputError.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"top_k must be a positive integer, got {k!r}.")
    if probabilities.ndim != 2:
        raise InputError(f"probabilities must be (images, classes), got shape {tuple(probabilities.shape)}.")
    values, indices = probabilities.detach().float().cpu().topk(min(int(k), probabilities.shape[1]), dim=1)
    return [
        [Prediction(labels[int(i)], int(i), float(p)) for p, i in zip(row_values, row_indices)]
        for row_values, row_indices in zip(values, indices)
    ]


def resolve_targets(
    classifier: Classifier, target: Target, logits: torch.Tensor | None = None, *, count: int | None = None
) -> list[int]:
    """One class index per image.

    ``target``: None (each image's predicted class, the argmax of ``logits``), a class index or label
    (for every image), or one per image as a list/tuple, a 1-D tensor or array. The number of images is
    ``logits.shape[0]`` or ``count`` (give ``count`` and no logits when ``target`` is not None and no
    forward pass is wanted).
    """
    if logits is not None:
        count = int(logits.shape[0])
    if target is None:
        if logits is None:
            raise InputError("resolve_targets needs the logits to pick the predicted class when target is None.")
        return [int(i) for i in logits.detach().argmax(dim=1).cpu()]
    if isinstance(target, (torch.Tensor, np.ndarray)):
        if target.ndim == 0:
            return resolve_targets(classifier, int(target.item()), logits, count=count)
        return resolve_targets(classifier, [int(t) for t in target.reshape(-1).tolist()], logits, count=count)
    if isinstance(target, (list, tuple)):
        if count is not None and len(target) != count:
            raise InputError(
                f"target has {len(target)} entries but {count} image(s) were given; give one target, or one per image."
            )
        return [classifier.class_index(t) for t in target]
    if count is None:
        raise InputError("resolve_targets needs logits or count to repeat one target for every image.")
    return [classifier.class_index(target)] * count  # type: ignore[arg-type]
