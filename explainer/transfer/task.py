"""One transfer task: a dataset, a pretrained backbone and the training recipe every strategy shares.

A :class:`TransferTask` loads the backbone and its frozen features on first use and offers the
strategies what they need: the support's images prepared for the backbone or as pixels, a probe
head, and the score of a network on the whole test split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from explainer.data.datasets import Dataset
from explainer.models import Classifier, load_model
from explainer.transfer.feature_cache import Features, check_backbone, dataset_features, prepare_images, resize
from explainer.transfer.learners import PROBE_C, fit_logistic

#: Adam learning rates: fine_tune and scratch share ``lr`` (default DEFAULT_LR); the small CNN has its own.
DEFAULT_LR = 3e-4
SMALL_CNN_LR = 1e-3
DEFAULT_STEPS = 100
DEFAULT_IMAGE_SIZE = 64
DEFAULT_BATCH_SIZE = 32
#: Version of the training recipe; part of a results file's configuration.
RECIPE_VERSION = 3
#: Test images scored per forward pass.
SCORE_BATCH = 128


def model_name_of(model: str | Classifier) -> str:
    """The name results record for a backbone given by name or as a loaded classifier."""
    return model.name if isinstance(model, Classifier) else str(model).removeprefix("timm:")


@dataclass
class TransferTask:
    """A dataset and a pretrained backbone (a name, loaded on first use, or a :class:`Classifier`)."""

    data: Dataset
    model: str | Classifier
    device: torch.device
    image_size: int = DEFAULT_IMAGE_SIZE
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    batch_size: int = DEFAULT_BATCH_SIZE
    cache_dir: str | Path | None = None
    _classifier: Classifier | None = field(default=None, init=False, repr=False)
    _features: Features | None = field(default=None, init=False, repr=False)

    @property
    def model_name(self) -> str:
        """The backbone's name."""
        return model_name_of(self.model)

    def classifier(self) -> Classifier:
        """The pretrained backbone, loaded on first use."""
        if self._classifier is None:
            if isinstance(self.model, Classifier):
                self._classifier = self.model
            else:
                self._classifier = load_model(self.model, device=self.device)
            check_backbone(self._classifier)
        return self._classifier

    def features(self) -> Features:
        """The backbone's features of the whole dataset, from the cache or computed on first use."""
        if self._features is None:
            self._features = dataset_features(
                self.classifier(), self.data.x_train, self.data.x_test, self.image_size, directory=self.cache_dir
            )
        return self._features

    def labels(self, support: np.ndarray) -> torch.Tensor:
        """The support's labels on the task's device."""
        return self.data.y_train[support].to(self.device)

    def probe(self, support: np.ndarray, *, c: float = PROBE_C) -> nn.Linear:
        """Logistic regression (inverse L2 strength ``c``) on the support's frozen features."""
        features = self.features().train[support].to(self.device)
        return fit_logistic(features, self.labels(support), self.data.num_classes, c=c)

    def backbone_input(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] → the backbone's normalized, resized, channels-last input."""
        return prepare_images(self.classifier(), images, self.image_size).contiguous(memory_format=torch.channels_last)

    def pixel_input(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], resized to the task's image size, on its device."""
        return resize(images.to(self.device, torch.float32), self.image_size)

    def predict(self, net: nn.Module, prepare: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> np.ndarray:
        """Predicted labels of ``images`` (pixels in [0, 1]) by ``net`` in eval mode, inputs made by ``prepare``."""
        with torch.inference_mode():
            return torch.cat([net(prepare(chunk)).argmax(1).cpu() for chunk in images.split(SCORE_BATCH)]).numpy()

    def predict_head(self, head: nn.Linear, inputs: torch.Tensor) -> np.ndarray:
        """Predicted labels of a linear head on precomputed inputs (features or flattened pixels)."""
        with torch.no_grad():
            return head(inputs.to(self.device)).argmax(dim=1).cpu().numpy()
