"""The CAV classifier of TCAV: a seeded linear SGD classifier in Captum's ``Classifier`` interface."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from captum.concept import Classifier as CaptumClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier


class LinearCav(CaptumClassifier):
    """Concept classifier for Captum's TCAV: a seeded linear SGD classifier on a stratified 2/3 split,
    its held-out accuracy in ``{"accs": ...}``; the CAV is the normal of its boundary."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.model = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)

    def train_and_eval(self, dataloader: Any, test_split_ratio: float = 1 / 3, **kwargs: Any) -> dict[str, float]:
        """Fit on a stratified ``1 - test_split_ratio`` share of the activations; accuracy on the rest."""
        batches = list(dataloader)
        x = torch.cat([b[0] for b in batches]).detach().double().cpu().numpy()  # SGD computes in float64
        y = torch.cat([b[1] for b in batches]).cpu().numpy()
        generator = np.random.default_rng(self.seed)
        test = np.zeros(len(y), dtype=bool)
        for label in np.unique(y):
            members = generator.permutation(np.flatnonzero(y == label))
            test[members[: int(len(members) * test_split_ratio)]] = True
        with warnings.catch_warnings():  # an unconverged boundary still separates; its held-out accuracy says how well
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(x[~test], y[~test])
        return {"accs": float((self.model.predict(x[test]) == y[test]).mean()) if test.any() else math.nan}

    def weights(self) -> torch.Tensor:
        """One row per class (for two classes ``[-w, w]``), in the order of :meth:`classes`."""
        coef = torch.as_tensor(self.model.coef_, dtype=torch.float32)
        return torch.cat([-coef, coef]) if coef.shape[0] == 1 else coef

    def classes(self) -> list[int]:
        """The concept ids in the order of :meth:`weights`' rows."""
        return [int(c) for c in self.model.classes_]
