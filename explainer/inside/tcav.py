"""Testing with Concept Activation Vectors (TCAV, Kim et al. 2018) with its significance test, on Captum.

A *CAV* is the normal of a linear classifier that separates a layer's activations of concept images from
those of random images. The TCAV score of a concept for a class is the fraction of ``inputs`` whose
target-logit gradient at the layer points along the CAV (a positive directional derivative).

A single score means little: a CAV fitted against any random set gives some score. Two tests decide
whether a layer's score is claimed (``test=``); both Holm-adjust their p-values across layers
(:func:`explainer.stats.holm`) and claim a layer only where the adjusted p-value is below
:data:`explainer.stats.ALPHA`:

* ``"permutation"`` (the default) – the concept set is scored against ``runs`` reference random sets and
  ranked among ``permutations`` pseudo-concepts: random subsets of the concept and the other random images
  (as many images as the concept has), each scored against the *same* reference sets. Under the null
  "the concept images are no different from random images" every such subset is exchangeable with the
  concept set, so the rank of the concept's distance from the mean score is an exact p-value,
  ``(1 + #pseudo-concepts at least as far) / (permutations + 1)``. It needs ``(runs + 1) × len(concept)``
  random images and ``permutations + 1 > layers / ALPHA`` (else no layer could pass Holm).
* ``"kim"`` – Kim et al.'s own test: ``runs`` (≥ 10) CAVs against different random sets, their scores
  against those of random-vs-random CAVs (random set ``i + 1`` against random set ``i``) by Student's
  unpaired two-sided t-test (``scipy.stats.ttest_ind``, as in the authors' code). It treats the ``runs``
  concept scores as independent although they all share the one concept set, so it does not hold its
  error rate: on the known-answer CNN (``benchmarks/mechanisms.py``, 2026-12-03) it called 14 of 40 concepts of
  random training images significant at some layer (35 %), the permutation test 2 of 40 (5 %).

The numbers are Captum's TCAV (``captum.concept.TCAV``), computed once per image: Captum's layer
attribution (``LayerActivation``, ``LayerGradientXActivation`` without the multiplication – what
``captum.concept.TCAV`` runs inside) gives every image's activations and every input's target-logit gradient
at a layer once, and each pair of sets then costs one CAV fit and one matrix product – a permutation test
fits a thousand CAVs per layer, which Captum's ``interpret`` (per-set activation files, one CAV file per pair)
took 235 s for where this takes seconds. ``tests/test_tcav.py`` checks the scores equal
``captum.concept.TCAV.interpret``'s on the same sets. The CAVs come from :class:`explainer.inside.cav.LinearCav`, a
``captum.concept.Classifier`` with the linear model of Captum's ``DefaultClassifier`` and Kim et al.
(scikit-learn ``SGDClassifier``, ``alpha=0.01``), seeded, fitted on two thirds of the activations and scored
on the rest. Captum's ``DefaultClassifier`` is not used: for two concepts its linear model has one output column, so its
``argmax`` always picks the first class and its reported accuracy is the share of that class (captum 0.9).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from explainer import stats
from explainer.data.datasets import Dataset
from explainer.errors import InputError
from explainer.guards import user_state_guard
from explainer.jsonable import JsonResult
from explainer.models.classifier import Classifier, ImageBatch
from explainer.models.coerce import as_classifier
from explainer.rng import isolated_rng
from explainer.run.long_call import Estimate, batches, pass_time, start, timed_pass

#: Fewest random concepts (runs) the significance test of Kim et al. is run with.
MIN_RUNS = 10
#: Images per forward pass when Captum computes concept activations.
BATCH = 64
#: The tests ``tcav(test=...)`` runs: an exact permutation test (default) or Kim et al.'s t-test.
TESTS = ("permutation", "kim")
#: Pseudo-concepts of the permutation test by default (its smallest p-value: 1 / 100).
PERMUTATIONS = 99


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
    test: str = "permutation"
    permutations: int = 0  # pseudo-concepts of the permutation test (0 for Kim et al.'s t-test)

    @property
    def test_description(self) -> str:
        """The test in words, as the verdict and the JSON state it."""
        if self.test == "kim":
            return "Kim et al.'s Student t-test (scipy.stats.ttest_ind), two-sided, Holm across layers"
        return (f"permutation test: the concept's mean score against {self.runs} reference random sets ranked among "
                f"{self.permutations} random subsets of the concept and the other random images, two-sided, exact "
                "under exchangeability, Holm across layers")

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
        return (f"TCAV with {self.runs} random reference sets, {self.n_inputs} input(s), {self.test_description}: "
                + "; ".join(parts) + ".")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the test in words."""
        return {**super().to_dict(), "test_description": self.test_description}


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
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # one constant sample (all scores 1.0) is fine for the pooled variance
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        return float(ttest_ind(concept, null).pvalue)


def _layer_values(
    classifier: Classifier, layer: str, pixels: torch.Tensor, inputs: torch.Tensor, target: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's flattened activation at ``layer`` (``pixels`` in [0, 1]) and every input's flattened
    target-logit gradient there (``inputs`` already normalised)."""
    from captum.attr import LayerActivation, LayerGradientXActivation  # Captum costs ~1 s at import: on first use

    module = classifier.get_layer(layer)
    activation = LayerActivation(classifier.module, module)
    with torch.no_grad():
        activations = torch.cat([
            activation.attribute(classifier.normalize(batch).to(classifier.device)).flatten(1).float().cpu()
            for batch in pixels.split(BATCH)])
    gradients = LayerGradientXActivation(classifier.module, module, multiply_by_inputs=False)
    gradient = torch.cat([gradients.attribute(batch, target=target).detach().flatten(1).float().cpu()
                          for batch in inputs.split(BATCH)])
    return activations, gradient


def _in_their_span(activations: torch.Tensor, gradient: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations and gradients in an orthonormal basis of the activations' span (when it is smaller than the
    layer). SGD's weights stay in the span of its training rows, and rotations keep inner products, so a CAV
    fitted here scores every input as the full-width CAV would – at a fraction of the cost."""
    if activations.shape[1] <= activations.shape[0]:
        return activations, gradient
    basis, _ = torch.linalg.qr(activations.double().T)  # (width, images), orthonormal columns
    return activations.double() @ basis, gradient.double() @ basis


def _sign_counts(
    activations: torch.Tensor, gradient: torch.Tensor, pairs: list[tuple[np.ndarray, np.ndarray]], seed: int,
    bar: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each pair of image index sets (tested, reference): the TCAV sign-count score of the tested set –
    the share of inputs whose gradient has a positive component along its CAV – and the CAV's held-out
    accuracy. The tested set is labelled first, as ``captum.concept.TCAV`` labels a concept of smaller id."""
    from explainer.inside.cav import LinearCav  # imports Captum and scikit-learn: on first use
    activations, gradient = _in_their_span(activations, gradient)
    signs, accuracy = np.empty(len(pairs)), np.empty(len(pairs))
    for i, (tested, reference) in enumerate(pairs):
        x = torch.cat([activations[torch.as_tensor(tested)], activations[torch.as_tensor(reference)]])
        y = torch.cat([torch.zeros(len(tested), dtype=torch.long), torch.ones(len(reference), dtype=torch.long)])
        cav = LinearCav(seed)
        accuracy[i] = cav.train_and_eval([(x, y)])["accs"]
        towards = -torch.as_tensor(cav.model.coef_[0], dtype=gradient.dtype)  # weights()[0], unrounded
        signs[i] = float((gradient @ towards > 0).float().mean())
        if bar is not None:
            bar.update(1)
    return signs, accuracy


def _kim_layer(
    activations: torch.Tensor, gradient: torch.Tensor, concept: np.ndarray, randoms: list[np.ndarray], seed: int,
    bar: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Concept-vs-random_i and random_(i+1)-vs-random_i scores, the concept CAVs' accuracies, the t-test's p."""
    runs = len(randoms)
    pairs = [(concept, random) for random in randoms] + [(randoms[(i + 1) % runs], randoms[i]) for i in range(runs)]
    signs, accuracy = _sign_counts(activations, gradient, pairs, seed, bar)
    return signs[:runs], signs[runs:], accuracy[:runs], _two_sided_p(signs[:runs], signs[runs:])


def _permutation_layer(
    activations: torch.Tensor, gradient: torch.Tensor, concept: np.ndarray, pseudo: list[np.ndarray],
    references: list[np.ndarray], seed: int, bar: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The concept's scores against each reference set, each pseudo-concept's mean score, the concept CAVs'
    accuracies and the permutation p-value of the concept's distance from the mean of all mean scores."""
    runs = len(references)
    pairs = [(tested, reference) for tested in [concept, *pseudo] for reference in references]
    signs, accuracy = _sign_counts(activations, gradient, pairs, seed, bar)
    means = signs.reshape(len(pseudo) + 1, runs).mean(axis=1)
    distance = np.abs(means - means.mean())
    tolerance = 1e-12 * max(1.0, float(distance.max()))  # ties (equal float means) count against the concept
    p = (1 + int((distance[1:] >= distance[0] - tolerance).sum())) / (len(pseudo) + 1)
    return signs[:runs], means[1:], accuracy[:runs], p


def tcav(
    classifier: Classifier | nn.Module,
    concept_images: ImageBatch,
    random_images: ImageBatch,
    *,
    layers: str | Sequence[str],
    target: Any,
    inputs: ImageBatch | None = None,
    runs: int = MIN_RUNS,
    test: str = "permutation",
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> TcavResult:
    """TCAV (Kim et al. 2018) of ``concept_images`` for class ``target`` at each of ``layers``, with a test.

    ``test="permutation"`` (default, exact; see the module docstring) takes ``runs`` disjoint reference sets of
    ``len(concept_images)`` random images and permutes the concept with the remaining random images;
    ``test="kim"`` is Kim et al.'s t-test over ``runs`` random concepts (disjoint when there are enough, else
    each drawn anew from the pool). ``inputs`` are the images whose directional derivatives are scored – Kim
    et al. score images of the target class, so pass them; by default the pooled ``random_images`` are scored.
    Every input is differentiated in one batch.

    ``progress``: the estimate (per layer: a forward of every concept and random image, a forward + backward of
    every input – each timed on two passes – and the CAV fits, one timed on data of their size), then a bar over
    the CAVs on stderr; False is silent. ``budget_seconds``: refuse (InputError with what to shrink) a call
    estimated above it; None is no limit.
    """
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="tcav")
    if isinstance(runs, bool) or not isinstance(runs, (int, np.integer)) or runs < MIN_RUNS:
        raise InputError(f"runs must be an integer ≥ {MIN_RUNS} (TCAV's tests need at least {MIN_RUNS} random "
                         f"concepts), got {runs!r}; pass runs={MIN_RUNS} or more and enough random_images.")
    if test not in TESTS:
        raise InputError(f"Unknown test {test!r}; pick one of {', '.join(TESTS)} ('permutation' holds its error rate, "
                         "'kim' is Kim et al.'s t-test).")
    index = classifier.class_index(target)
    paths = _layer_paths(classifier, layers)
    concept_pixels = classifier.to_pixels(concept_images)
    random_pixels = classifier.to_pixels(random_images)
    generator = np.random.default_rng(seed)
    concept = np.arange(len(concept_pixels))  # indices into ``pixels``: the concept images, then the random ones
    pixels = torch.cat([concept_pixels, random_pixels])
    if test == "kim":
        size = min(len(concept_pixels), len(random_pixels))
        if size < 2:
            raise InputError(f"tcav needs at least 2 concept images and 2 random images (got {len(concept_pixels)} "
                             f"and {len(random_pixels)}); give more images of each.")
        sets, disjoint = _random_sets(len(random_pixels), size, int(runs), generator)
        pseudo: list[np.ndarray] = []
    else:
        size = len(concept_pixels)
        count = _check_permutations(permutations, len(paths), size, len(random_pixels), int(runs))
        order = generator.permutation(len(random_pixels))
        half = len(order) // 2  # the reference sets come from one half, the concept is permuted with the other
        chosen, disjoint = _random_sets(half, size, int(runs), generator)
        sets = [order[indices] for indices in chosen]
        permuted = np.concatenate([concept, len(concept) + order[half:]])
        pseudo = [permuted[generator.choice(len(permuted), size, replace=False)] for _ in range(count)]
    randoms = [len(concept) + chosen for chosen in sets]
    scored = classifier.preprocess(random_pixels if inputs is None else inputs)
    cavs = 2 * len(randoms) if test == "kim" else (len(pseudo) + 1) * len(randoms)
    bar = start("tcav", lambda: _estimate(classifier, pixels, scored, len(paths), cavs, 2 * size, seed),
                progress=progress, budget_seconds=budget_seconds, total=cavs * len(paths), unit="CAV",
                shrink=f"fewer layers ({len(paths)} now), fewer permutations (permutations={len(pseudo)} now) or "
                       f"reference sets (runs={runs} now), fewer random or concept images, or test='kim' (no "
                       "pseudo-concepts)")
    raw: list[tuple[str, np.ndarray, np.ndarray, np.ndarray, float]] = []
    with bar, user_state_guard(classifier.module), isolated_rng(seed):
        for name in paths:
            values = _layer_values(classifier, name, pixels, scored, index)
            if test == "kim":
                raw.append((name, *_kim_layer(*values, concept, randoms, seed, bar)))
            else:
                raw.append((name, *_permutation_layer(*values, concept, pseudo, randoms, seed, bar)))
    adjusted = stats.holm([p for *_rest, p in raw])
    rows = [TcavLayer(
        layer=name, score=stats.mean_interval(scores), null=stats.mean_interval(null), p_value=p,
        p_adjusted=float(p_adj), significant=bool(math.isfinite(p_adj) and p_adj < stats.ALPHA),
        cav_accuracy=stats.mean_interval(accuracy), concept_scores=scores.tolist(), null_scores=null.tolist(),
    ) for (name, scores, null, accuracy, p), p_adj in zip(raw, adjusted, strict=True)]
    return TcavResult(
        layers=rows, target=index, target_label=classifier.labels[index], runs=int(runs), n_inputs=len(scored),
        n_concept=len(concept_pixels), random_size=size, disjoint=disjoint, seconds=time.perf_counter() - started,
        model_name=classifier.name, test=test, permutations=len(pseudo),
    )


def _estimate(classifier: Classifier, pixels: torch.Tensor, scored: torch.Tensor, layers: int, cavs: int, rows: int,
              seed: int) -> Estimate:
    """Per layer: a forward of ``pixels`` and a forward + backward of ``scored`` (each timed on two passes), and
    ``cavs`` CAV fits on ``rows`` activations in the span of the images (one fit timed on random data of that size)."""
    forward = pass_time(classifier, pixels, batch=min(BATCH, len(pixels)))
    backward = pass_time(classifier, scored, batch=min(BATCH, len(scored)), backward=True)
    per_cav = _cav_seconds(rows, len(pixels), seed)
    seconds = layers * (sum(forward.seconds(n) for n in batches(len(pixels), BATCH))
                        + sum(backward.seconds(n) for n in batches(len(scored), BATCH)) + per_cav * cavs)
    return Estimate(seconds, f"{layers} layer(s) × ({len(pixels)} forward pass(es) at {forward.words()} + "
                             f"{len(scored)} forward+backward pass(es) at {backward.words()} + {cavs:,} CAV fits × "
                             f"{per_cav * 1000:.1f} ms), measured on {classifier.device}")


def _cav_seconds(rows: int, width: int, seed: int) -> float:
    """Seconds of one CAV fit (:class:`LinearCav`) on ``rows`` activations of ``width`` values, timed (after a
    warm-up fit) on seeded random data whose two sets lie a little apart."""
    from explainer.inside.cav import LinearCav  # imports Captum and scikit-learn: on first use

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, width, generator=generator, dtype=torch.float64)
    y = (torch.arange(rows) >= rows // 2).long()
    x[y == 1] += 0.5
    return timed_pass(lambda _samples: LinearCav(seed).train_and_eval([(x, y)]), 1).seconds(1)


def _check_permutations(permutations: Any, layers: int, size: int, random_count: int, runs: int) -> int:
    """The permutation test's count of pseudo-concepts, refused where no layer could pass Holm or the random
    images cannot give the reference sets and something to permute with."""
    needed = math.floor(layers / stats.ALPHA)  # Holm's first step needs 1 / (permutations + 1) < ALPHA / layers
    if isinstance(permutations, bool) or not isinstance(permutations, (int, np.integer)) or permutations < needed:
        raise InputError(f"permutations must be an integer ≥ {needed} for {layers} layer(s) (its smallest p-value, "
                         f"1 / (permutations + 1), must pass Holm at {stats.ALPHA:g}), got {permutations!r}; pass "
                         f"permutations={max(needed, PERMUTATIONS)}.")
    if size < 2 or random_count < 4 * size:
        raise InputError(f"The permutation test needs at least 2 concept images and 4 × as many random images (half "
                         f"for the {runs} reference sets, half to permute the concept with), got {size} and "
                         f"{random_count}; give at least {4 * max(size, 2)} random images, fewer concept images, or "
                         "test='kim'.")
    return int(permutations)


def concept_sets(
    data: Dataset, concept: int | str, *, size: int = 12, random: int = 48, seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Example images for :func:`tcav` from a labelled dataset: ``size`` training images of class ``concept``
    (an index or a name of ``data.class_names``) and ``random`` training images of every class, none of them in
    the concept set, both drawn with ``seed``. The permutation test needs ``random ≥ 4 × size``."""
    if isinstance(concept, str):
        if concept not in data.class_names:
            raise InputError(f"{concept!r} is not a class of {data.name}; pick one of {', '.join(data.class_names)}.")
        concept = data.class_names.index(concept)
    if isinstance(concept, bool) or not 0 <= int(concept) < data.num_classes:
        raise InputError(f"concept must be a class of {data.name} (0 to {data.num_classes - 1} or a name), "
                         f"got {concept!r}.")
    generator = torch.Generator().manual_seed(seed)
    members = torch.nonzero(data.y_train == int(concept)).flatten()
    members = members[torch.randperm(len(members), generator=generator)]
    if size < 2 or len(members) < size:
        raise InputError(f"size must be from 2 to {len(members)} (the training images of {data.class_names[concept]!r}), "
                         f"got {size!r}.")
    chosen = members[:size]
    others = torch.ones(len(data.y_train), dtype=torch.bool)
    others[chosen] = False
    pool = torch.nonzero(others).flatten()
    if random < 2 or len(pool) < random:
        raise InputError(f"random must be from 2 to {len(pool)} (the other training images), got {random!r}.")
    drawn = pool[torch.randperm(len(pool), generator=generator)[:random]]
    return data.x_train[chosen], data.x_train[drawn]
