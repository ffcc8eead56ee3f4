"""Testing with Concept Activation Vectors (TCAV, Kim et al. 2018) with its significance test, on Captum.

A *CAV* is the normal of a linear classifier that separates a layer's activations of concept images from
those of random images. The TCAV score of a concept for a class is the fraction of ``inputs`` whose
target-logit gradient at the layer points along the CAV (a positive directional derivative).

A single score means little: a CAV fitted against any random set gives some score. Kim et al. therefore
fit ``runs`` (≥ 10) CAVs against different random sets and compare their scores with those of
random-vs-random CAVs (the null: random set ``i + 1`` against random set ``i``) by a two-sided t-test.
Here the test is Student's unpaired t-test (``scipy.stats.ttest_ind``, as in the authors' code;
:mod:`explainer.stats` holds only a paired test), the p-values are Holm-adjusted across layers
(:func:`explainer.stats.holm`), and a layer's score is claimed only where the adjusted p-value is below
:data:`explainer.stats.ALPHA`.

Caveat (measured on the known-answer CNN, 2026-12-02): the test treats the ``runs`` concept scores as
independent although they all share the one concept set, so it does not hold its error rate – 2 of 6 random
sets drawn like the random concepts (no label information) came out significant at one layer. Read a
significant layer as "this concept set differs from random sets here", and check another concept set.

Captum (``captum.concept.TCAV``) computes the activations, gradients and scores; its files go to a temporary
folder that is removed afterwards. The CAVs come from :class:`LinearCav`, a ``captum.concept.Classifier``
with the linear model of Captum's ``DefaultClassifier`` and Kim et al. (scikit-learn ``SGDClassifier``,
``alpha=0.01``), seeded, fitted on two thirds of the activations and scored on the rest. Captum's
``DefaultClassifier`` is not used: for two concepts its linear model has one output column, so its
``argmax`` always picks the first class and its reported accuracy is the share of that class (captum 0.9).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from captum.concept import TCAV, Concept
from captum.concept import Classifier as CaptumClassifier
from scipy import stats as _scipy_stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from torch import nn
from tqdm.auto import tqdm

from explainer import stats
from explainer._plumbing import JsonResult, isolated_rng, user_state_guard
from explainer.errors import InputError
from explainer.models.classifier import Classifier, ImageBatch
from explainer.models.coerce import as_classifier

#: Fewest random concepts (runs) the significance test of Kim et al. is run with.
MIN_RUNS = 10
#: Images per forward pass when Captum computes concept activations.
BATCH = 64


@dataclass(frozen=True)
class TcavLayer:
    """One layer: the concept's TCAV score over runs, the random-vs-random (null) score, the test."""

    layer: str
    score: stats.Interval
    null: stats.Interval
    p_value: float
    p_adjusted: float
    significant: bool
    cav_accuracy: stats.Interval  # held-out accuracy of the concept-vs-random classifiers over runs
    concept_scores: list[float]
    null_scores: list[float]


@dataclass
class TcavResult(JsonResult):
    """TCAV scores of one concept for ``target`` at each layer, tested against random concepts."""

    layers: list[TcavLayer]
    target: int
    target_label: str
    runs: int
    n_inputs: int
    n_concept: int
    random_size: int
    disjoint: bool  # True when the random concepts share no image
    seconds: float = 0.0
    model_name: str = ""
    test: str = "Student t-test (scipy.stats.ttest_ind), two-sided, Holm across layers"

    def summary(self) -> pd.DataFrame:
        """One row per layer: mean concept and null scores (with the concept's interval), p-values, verdict."""
        return pd.DataFrame([{
            "layer": row.layer, "score": row.score.mean, "ci_low": row.score.low, "ci_high": row.score.high,
            "null": row.null.mean, "p_value": row.p_value, "p_adjusted": row.p_adjusted,
            "significant": row.significant, "cav_accuracy": row.cav_accuracy.mean, "runs": row.score.n,
        } for row in self.layers])

    def verdict(self) -> str:
        """In words: where the target class uses the concept, and where no claim is made."""
        parts = []
        for row in self.layers:
            if row.significant:
                direction = "towards" if row.score.mean > row.null.mean else "away from"
                parts.append(f"layer {row.layer}: TCAV score {row.score.mean:.2f} (95 % interval {row.score.low:.2f} "
                             f"to {row.score.high:.2f}) vs random {row.null.mean:.2f}, Holm-adjusted "
                             f"p = {row.p_adjusted:.2g} – the class {self.target_label!r} is sensitive "
                             f"{direction} the concept")
            else:
                parts.append(f"layer {row.layer}: not significant: no claim (score {row.score.mean:.2f} vs random "
                             f"{row.null.mean:.2f}, Holm-adjusted p = {row.p_adjusted:.2g})")
        return f"TCAV over {self.runs} random concepts, {self.n_inputs} input(s): " + "; ".join(parts) + "."


class LinearCav(CaptumClassifier):
    """Concept classifier for Captum's TCAV: a seeded linear SGD classifier on a stratified 2/3 split,
    its held-out accuracy in ``{"accs": ...}``; the CAV is the normal of its boundary."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.model = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed)

    def train_and_eval(self, dataloader: Any, test_split_ratio: float = 1 / 3, **kwargs: Any) -> dict[str, float]:
        """Fit on a stratified ``1 - test_split_ratio`` share of the activations; accuracy on the rest."""
        batches = list(dataloader)
        x = torch.cat([b[0] for b in batches]).detach().float().cpu().numpy()
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


def _layer_paths(classifier: Classifier, layers: str | Sequence[str]) -> dict[str, str]:
    """Each requested layer name → its dotted path in ``classifier.module`` (what Captum looks up)."""
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names or not all(isinstance(name, str) for name in names):
        raise InputError("layers must be a layer name or a list of names; classifier.layer_names() lists them.")
    paths = {id(module): path for path, module in classifier.module.named_modules() if path}
    found = {}
    for name in names:
        module = classifier.get_layer(name)
        if id(module) not in paths:
            raise InputError(f"Layer {name!r} is not a sub-module of the classifier's module; pick one of "
                             "classifier.layer_names().")
        found[name] = paths[id(module)]
    return found


def _random_sets(count: int, size: int, runs: int, generator: np.random.Generator) -> tuple[list[np.ndarray], bool]:
    """``runs`` index sets of ``size`` random images: disjoint when the pool is large enough, else drawn anew."""
    if count >= runs * size:
        order = generator.permutation(count)
        return [order[i * size : (i + 1) * size] for i in range(runs)], True
    return [generator.choice(count, size=size, replace=False) for _ in range(runs)], False


def _two_sided_p(concept: np.ndarray, null: np.ndarray) -> float:
    """Student's unpaired t-test; where both samples are constant, 0 if their values differ, else 1."""
    if concept.std() == 0.0 and null.std() == 0.0:
        return 0.0 if concept.mean() != null.mean() else 1.0
    with warnings.catch_warnings():  # one constant sample (all scores 1.0) is fine for the pooled variance
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return float(_scipy_stats.ttest_ind(concept, null).pvalue)


def _batches(inputs: torch.Tensor) -> list[torch.Tensor]:
    return list(inputs.split(BATCH))


def _layer_scores(
    classifier: Classifier, path: str, concept: Concept, randoms: list[Concept], inputs: torch.Tensor, target: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concept-vs-random_i and random_(i+1)-vs-random_i sign-count scores and CAV accuracies at one layer."""
    runs = len(randoms)
    experiments = [[concept, random] for random in randoms]
    experiments += [[randoms[(i + 1) % runs], randoms[i]] for i in range(runs)]
    with tempfile.TemporaryDirectory(prefix="explainer-tcav-") as folder:
        interpreter = TCAV(classifier.module, layers=[path], classifier=LinearCav(seed), save_path=folder + "/")
        scores = interpreter.interpret(inputs, experiments, target=target)
        accuracy = [float(interpreter.cavs[f"{concept.id}-{random.id}"][path].stats["accs"]) for random in randoms]
    keys = [f"{first.id}-{second.id}" for first, second in experiments]
    signs = np.array([float(scores[key][path]["sign_count"][0]) for key in keys])
    return signs[:runs], signs[runs:], np.array(accuracy)


def tcav(
    classifier: Classifier | nn.Module,
    concept_images: ImageBatch,
    random_images: ImageBatch,
    *,
    layers: str | Sequence[str],
    target: Any,
    inputs: ImageBatch | None = None,
    runs: int = MIN_RUNS,
    seed: int = 0,
    progress: bool = True,
) -> TcavResult:
    """TCAV (Kim et al. 2018) of ``concept_images`` for class ``target`` at each of ``layers``, with the test.

    ``random_images`` are split into ``runs`` random concepts of ``len(concept_images)`` images each
    (disjoint when there are enough, else each drawn anew from the pool). ``inputs`` are the images whose
    directional derivatives are scored – Kim et al. score images of the target class, so pass them; by
    default the pooled ``random_images`` are scored. Every input is differentiated in one batch.
    """
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="tcav")
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < MIN_RUNS:
        raise InputError(f"runs must be an integer ≥ {MIN_RUNS} (Kim et al.'s t-test needs at least {MIN_RUNS} "
                         f"random concepts), got {runs!r}; pass runs={MIN_RUNS} or more and enough random_images.")
    index = classifier.class_index(target)
    paths = _layer_paths(classifier, layers)
    concept_pixels = classifier.to_pixels(concept_images)
    random_pixels = classifier.to_pixels(random_images)
    size = min(len(concept_pixels), len(random_pixels))
    if size < 2:
        raise InputError(f"tcav needs at least 2 concept images and 2 random images (got {len(concept_pixels)} "
                         f"and {len(random_pixels)}); give more images of each.")
    sets, disjoint = _random_sets(len(random_pixels), size, int(runs), np.random.default_rng(seed))
    scored = classifier.preprocess(random_pixels if inputs is None else inputs)
    concept = Concept(0, "concept", _batches(classifier.normalize(concept_pixels).to(classifier.device)))
    randoms = [Concept(i + 1, f"random_{i}", _batches(classifier.normalize(random_pixels[chosen]).to(classifier.device)))
               for i, chosen in enumerate(sets)]
    raw: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    with user_state_guard(classifier.module), isolated_rng(seed):  # Captum draws from the global RNG
        for name, path in tqdm(paths.items(), desc="tcav", unit="layer", file=sys.stderr, disable=not progress):
            raw.append((name, *_layer_scores(classifier, path, concept, randoms, scored, index, seed)))
    p_values = [_two_sided_p(scores, null) for _name, scores, null, _acc in raw]
    adjusted = stats.holm(p_values)
    rows = [TcavLayer(
        layer=name, score=stats.mean_interval(scores), null=stats.mean_interval(null), p_value=p,
        p_adjusted=float(p_adj), significant=bool(math.isfinite(p_adj) and p_adj < stats.ALPHA),
        cav_accuracy=stats.mean_interval(accuracy), concept_scores=scores.tolist(), null_scores=null.tolist(),
    ) for (name, scores, null, accuracy), p, p_adj in zip(raw, p_values, adjusted, strict=True)]
    return TcavResult(
        layers=rows, target=index, target_label=classifier.labels[index], runs=int(runs), n_inputs=len(scored),
        n_concept=len(concept_pixels), random_size=size, disjoint=disjoint, seconds=time.perf_counter() - started,
        model_name=classifier.name,
    )
