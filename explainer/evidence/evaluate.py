"""``explainer.evaluate``: which attribution map can I trust for this model? – evidence over a dataset.

Every method and every control (:mod:`explainer.evidence.controls`) is scored on every image by the one
protocol of :mod:`explainer.evidence.metrics`; the result holds per-image rows, the mean of each method ×
metric with a 95 % bootstrap interval over images, paired comparisons between methods, flags where a
method does not beat the edge or brightness control, and a verdict in words that names a winner only
where the interval of the difference excludes zero.

Notebook use::

    import explainer
    model = explainer.load_model()
    result = explainer.evaluate(model, "samples", methods=["gradcam", "integrated_gradients"])
    print(result.verdict())
    result.to_dict()        # {"summary": [...], "comparisons": [...], "flags": [...], "verdict": ..., "config": ...}

Scale: a unit of work is one image (every method and control of it together, so their perturbed
curves share forward passes); units run through :func:`explainer.run.run_units`, so ``out=FILE`` writes
rows as they finish and a rerun resumes, and ``backend="ray"`` runs them on an existing Ray cluster
(one worker per slot loads the model once). A row depends only on its image index, the settings and
``seed`` (seeded generators, never the global RNG), so the local and Ray rows are equal.

The parts: :mod:`explainer.data.evaluation_data` (the data as pixels), :mod:`explainer.evidence.image_scoring`
(one image's row), :mod:`explainer.evidence.evaluation_estimate` (the time estimate) and
:mod:`explainer.evidence.evaluation` (the result and its verdict); this module runs them.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from explainer.data.evaluation_data import EvaluationData, load_evaluation_data
from explainer.errors import InputError
from explainer.evidence import metrics as M
from explainer.evidence.controls import CONTROLS, is_control
from explainer.evidence.curves import step_counts
from explainer.evidence.evaluation import Evaluation
from explainer.evidence.evaluation_estimate import estimate_evaluation
from explainer.evidence.image_scoring import Settings, make_worker
from explainer.evidence.precision import CHECK_IMAGES, resolve_precision
from explainer.evidence.randomization import RANDOMIZATION_STEPS
from explainer.jsonable import json_ready

if TYPE_CHECKING:
    from explainer.run import StudyProgress

#: Metrics computed by default (mask metrics only where the data have masks).
DEFAULT_METRICS = tuple(M.METRICS)


def _methods(methods: Sequence[str] | str, controls: bool) -> tuple[str, ...]:
    from explainer.attribution.registry import get_method

    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise InputError("methods is empty; name at least one, e.g. methods=['gradcam'].")
    for name in names:
        if not is_control(name):
            get_method(name)
        elif name not in CONTROLS:
            raise InputError(f"Unknown control {name!r}; choose from: {', '.join(CONTROLS)}.")
    if controls:
        names += [c for c in CONTROLS if c not in names]
    if len(set(names)) != len(names):
        raise InputError(f"A method is named twice in {names}.")
    return tuple(names)


def _metric_names(metrics: Sequence[str] | str | None, has_masks: bool) -> tuple[str, ...]:
    if metrics is None:
        names = [m for m in DEFAULT_METRICS if has_masks or not M.METRICS[m].needs_masks]
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        for name in names:
            M.metric(name)
            if M.METRICS[name].needs_masks and not has_masks:
                raise InputError(f"{name} needs ground-truth masks; use data with masks such as 'known_answer'.")
    return tuple(names)


def evaluate(
    classifier: Any,
    data: Any,
    *,
    methods: Sequence[str] | str,
    metrics: Sequence[str] | str | None = None,
    controls: bool = True,
    limit: int | None = None,
    targets: str | Sequence[int | str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    steps: int = M.DEFAULT_STEPS,
    baseline: str = "zero",
    randomization_steps: int = RANDOMIZATION_STEPS,
    batch_size: int | None = None,
    memory_budget_mb: float | None = None,
    device: str | None = None,
    out: str | None = None,
    backend: str = "local",
    address: str | None = None,
    seed: int = 0,
    progress: bool | StudyProgress = True,
    estimate: bool = False,
    precision: str = "fp32",
    compile: bool = False,
    budget_seconds: float | None = None,
    insertion_blur: str = "rise",
    randomization_copies: int = M.RANDOMIZATION_COPIES,
) -> Evaluation:
    """Score ``methods`` (and the controls) on every image of ``data`` with the one protocol.

    ``classifier``: a Classifier, or a model source for :func:`explainer.load_model` (what Ray workers
    load). ``data``: image paths or images, a :class:`explainer.Dataset` (its test split), a dataset name
    (``"digits"``, ``"known_answer"``, ``"imagefolder:PATH"``), ``"samples"`` (the bundled photos) or a
    DataLoader. ``metrics``: names from :data:`explainer.evidence.metrics.METRICS` (default all; mask
    metrics where the data have masks). ``targets``: None (each image's predicted class), ``"labels"``
    or one per image. ``params``: method → parameters. ``out``: a results file (JSON lines; a rerun with
    the same settings resumes). ``backend``: ``"local"`` or ``"ray"`` (``address`` of an existing cluster,
    default ``"auto"``). ``progress``: the estimate, then a tqdm bar on stderr (True, the default), silence
    (False) or ``callback(done, total, seconds_left)``. ``estimate=True`` (implied by a shown progress or a
    budget) times the first image before the run and stores the prediction in ``Evaluation.estimate_seconds``;
    ``budget_seconds`` refuses (InputError with what to shrink) a run estimated above it.
    ``insertion_blur``: ``"rise"`` (default) or ``"sigma20"``; ``randomization_copies``: independently
    randomized copies of the model (≥ 3 by default, so intervals carry re-initialisation variance). ``precision`` (``"fp32"``,
    ``"bf16"``, ``"auto"``) and ``compile``: how the perturbed forwards of the curves run
    (:mod:`explainer.evidence.precision`; recorded in ``config["precision"]``).
    """
    from explainer.models import Classifier, load_model
    from explainer.run import finished_keys, run_units

    model = classifier if isinstance(classifier, Classifier) else load_model(classifier, device=device)
    loaded = load_evaluation_data(data, model, limit)
    names = _methods(methods, controls)
    settings = Settings(
        methods=names,
        params={k: dict(v) for k, v in (params or {}).items()},
        metrics=_metric_names(metrics, loaded.masks is not None),
        steps=steps, baseline=M.baseline_name(baseline), road_noise=M.ROAD_NOISE,
        randomization_steps=randomization_steps, seed=int(seed),
        targets=tuple(targets) if isinstance(targets, (list, tuple)) else targets,  # type: ignore[arg-type]
        batch_size=batch_size, memory_budget_mb=memory_budget_mb,
        precision=resolve_precision(model, precision, compile=compile,
                                    probe=model.normalize(loaded.pixels[:CHECK_IMAGES])),
        insertion_blur=insertion_blur, randomization_copies=randomization_copies,
    )
    if insertion_blur not in M.INSERTION_BLURS:
        raise InputError(f"insertion_blur={insertion_blur!r} is not known; choose one of: {', '.join(M.INSERTION_BLURS)}.")
    if "randomization" in settings.metrics and (isinstance(randomization_copies, bool)
                                                or not isinstance(randomization_copies, int) or randomization_copies < 2):
        raise InputError(f"randomization_copies must be an integer ≥ 2 (3 or more recommended), got {randomization_copies!r}.")
    _check_budget(budget_seconds)
    step_counts(4, steps)  # validates steps
    if targets not in (None, "labels") and not isinstance(targets, (list, tuple)):
        raise InputError(f"targets must be None (predicted), 'labels' or one per image, got {targets!r}.")
    config = _config(model, classifier, data, loaded, settings, limit)
    predicted = None
    units = [{"image": i} for i in range(len(loaded.pixels))]
    left = len(units) - len(finished_keys(out, units))  # a resumed results file: only its missing images cost time
    if not left and estimate:
        predicted = 0.0
    if left and (estimate or progress is not False or budget_seconds is not None):
        forecast = estimate_evaluation(model, loaded, settings, images=left)
        predicted = forecast.seconds
        if budget_seconds is not None and forecast.seconds > budget_seconds:
            raise InputError(f"This evaluation is estimated at {forecast.text()} – over the time budget of "
                             f"{budget_seconds:g} s. Use fewer images (limit=), fewer methods or metrics (leaving out "
                             "randomization saves the most), fewer steps or randomization_steps, or pass "
                             "budget_seconds=None (no limit; --budget 0 on the command line) or a larger budget.")
        if progress is not False:
            resumed = f" ({len(units) - left} of {len(units)} already in {out})" if left < len(units) else ""
            print(f"estimate: {forecast.text()}{resumed}", file=sys.stderr)
    worker_data = data if isinstance(data, str) else loaded
    worker_model = classifier if isinstance(classifier, str) else model
    factory = functools.partial(make_worker, worker_model, worker_data, limit, settings, device)
    started = time.perf_counter()
    resources = {"num_cpus": 1, "num_gpus": 1 if model.device.type == "cuda" else 0}
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=len(units), desc="evaluate", unit="image", file=sys.stderr)
    try:
        rows = run_units(units, factory, out=out, config=config, backend=backend, address=address,
                         resources=resources if backend == "ray" else None,
                         progress=_progress(progress if callable(progress) else bar, started))
    finally:
        if bar is not None:
            bar.close()
    return Evaluation(rows, list(names), list(settings.metrics), config, time.perf_counter() - started, predicted)


def _check_budget(budget_seconds: float | None) -> None:
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds or None (no limit), got {budget_seconds!r}.")


def _progress(callback: Any, started: float) -> Callable[[int, int, Any], None] | None:
    """The runner's progress hook: a tqdm bar (moved to ``done``), a callback, or None."""
    if callback is None or callback is False:
        return None
    if not callable(callback):  # a tqdm bar
        bar = callback

        def advance(done: int, total: int, _row: Any) -> None:
            bar.n = done
            bar.refresh()

        return advance
    first: list[int] = []

    def report(done: int, total: int, _row: Any) -> None:
        if not first:
            first.append(done - 1)  # rows already in the file cost nothing
        fresh = done - first[0]
        elapsed = time.perf_counter() - started
        left = elapsed / fresh * (total - done) if fresh > 0 else None
        callback(done, total, left)

    return report


def _config(model: Any, source: Any, data: Any, loaded: EvaluationData, settings: Settings, limit: int | None
            ) -> dict[str, Any]:
    return json_ready({
        "kind": "evaluation",
        "model": model.name if not isinstance(source, str) else source,
        "data": data if isinstance(data, str) else loaded.description,
        "images": len(loaded.pixels),
        "limit": limit,
        "methods": list(settings.methods),
        "params": {k: dict(v) for k, v in settings.params.items()},
        "metrics": list(settings.metrics),
        "steps": settings.steps,
        "baseline": settings.baseline,
        "randomization_steps": settings.randomization_steps,
        "targets": settings.targets if settings.targets is None or isinstance(settings.targets, str) else list(settings.targets),
        "seed": settings.seed,
        "precision": settings.precision.to_dict() if settings.precision else None,
        "insertion_blur": settings.insertion_blur,
        "randomization_copies": settings.randomization_copies,
        "protocol": M.protocol_description(settings.steps, settings.baseline, settings.road_noise,
                                           settings.randomization_steps, settings.insertion_blur,
                                           settings.randomization_copies),
    })


# ---------------------------------------------------------------------------- small models
#: Model sources of the form ``train:ARCH`` train ARCH on the data's train split (see trained_classifier).
TRAIN_PREFIX = "train:"


def trained_classifier(arch: str, dataset: Any, *, seed: int = 0, epochs: int = 20,
                       target_accuracy: float | None = 0.97) -> Any:
    """A small network (``"cnn"``, ``"mlp"`` or a timm name) trained on ``dataset``'s train split, as a Classifier.

    For the CLI's ``--model train:cnn`` and for notebooks: the digits CNN trains to ≥ 97 % in seconds on a
    CPU. Training is seeded; the returned Classifier is what the evaluation (and its Ray workers) use.
    """
    from explainer.data.datasets import Dataset, load_dataset
    from explainer.learn.architectures import build_model
    from explainer.learn.training import fit
    from explainer.models import Classifier

    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if not data.is_image:
        raise InputError(f"{data.name} holds 2-D points, not images; attribution maps need images.")
    network = build_model(arch, data, seed=seed)
    fit(network, data, epochs=epochs, target_accuracy=target_accuracy, seed=seed, device="cpu")
    return Classifier.from_module(network.eval(), dataset=data, name=f"{arch} ({data.name}, seed {seed})")
