"""Which test images a classifier gets right and which it gets wrong: the examples worth explaining."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explainer.data.datasets import Dataset
from explainer.models.classifier import Classifier


@dataclass
class RightAndWrong:
    """Predictions on a dataset's test split and the first ``count`` images it gets right and wrong."""

    predicted: torch.Tensor
    right: list[int]
    wrong: list[int]
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """The share of test images predicted right."""
        return self.correct / self.total if self.total else float("nan")


def right_and_wrong(classifier: Classifier, data: Dataset, *, count: int = 4) -> RightAndWrong:
    """One forward pass over ``data``'s test images; the first ``count`` right and ``count`` wrong indices."""
    predicted = classifier.logits(data.x_test).argmax(dim=1)
    hit = predicted == data.y_test
    return RightAndWrong(predicted, [int(i) for i in hit.nonzero().flatten()[:count]],
                         [int(i) for i in (~hit).nonzero().flatten()[:count]], int(hit.sum()), len(data.y_test))
