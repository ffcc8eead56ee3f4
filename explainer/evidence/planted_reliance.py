"""How much a network uses the planted shortcut, measured causally: its accuracy with the shortcut flipped."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from explainer.errors import InputError


@dataclass
class Reliance:
    """How much a network uses the shortcut, measured by changing it: accuracies on the test set as it is,
    with every shortcut flipped to another class's colour, and with the shortcut painted over."""

    accuracy: float
    flipped_accuracy: float
    removed_accuracy: float

    @property
    def flip_drop(self) -> float:
        """Accuracy lost when the shortcut lies (the reliance score, a fraction)."""
        return self.accuracy - self.flipped_accuracy

    @property
    def removal_drop(self) -> float:
        """Accuracy lost when the shortcut is painted over."""
        return self.accuracy - self.removed_accuracy

    def to_dict(self) -> dict[str, float]:
        """The three accuracies and both drops."""
        return {**asdict(self), "flip_drop": self.flip_drop, "removal_drop": self.removal_drop}


def shortcut_reliance(model: Any, dataset: Any) -> Reliance:
    """The measured reliance of ``model`` (an nn.Module or Classifier taking pixels) on ``dataset``'s shortcut."""
    from explainer.learn.training import evaluate

    truth = getattr(dataset, "truth", None)
    if truth is None:
        raise InputError(f"{getattr(dataset, 'name', dataset)!r} has no planted truth; use load_dataset('planted').")
    module = getattr(model, "module", model)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    y = dataset.y_test.to(device)
    accuracies = [evaluate(module, x.to(device), y)[1] for x in (dataset.x_test, truth.x_test_flipped, truth.x_test_removed)]
    return Reliance(*accuracies)
