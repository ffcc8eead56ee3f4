"""How long an attribution will take, before running it: model evaluations × a measured pass time.

The evaluations come from the method's declaration (``MethodSpec.cost``), so a registered
method is estimated without any change here. Notebook use::

    cost = explainer.estimate_cost(model, photo, "occlusion")
    cost.seconds, cost.text()     # e.g. 41.3, '≈ 41 s: 729 forward passes per image × 56.6 ms …'

:func:`check_budget` refuses work that would take longer than a budget before it starts
(``explain(..., budget_seconds=600)`` by default); evidence and sweeps call it too.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from explainer.attribution.registry import MethodSpec, get_method
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.run.long_call import duration

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: Samples per timed pass: small enough to be quick, large enough to amortise per-call overhead.
TIMING_BATCH = 4
#: What ``explain(..., budget_seconds=)`` allows by default: ten minutes.
DEFAULT_BUDGET_SECONDS = 600.0
#: Calls needing at most this many model evaluations in all are never timed for the budget check
#: (even at a second per evaluation they stay well inside the default budget).
UNTIMED_EVALUATIONS = 64
_TIMINGS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, float]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CostEstimate:
    """Predicted cost of ``explain(classifier, images, method, **params)``.

    ``evaluations`` model evaluations per image, each a forward pass (perturbation methods) or a
    forward + backward pass (gradient and CAM methods), at ``seconds_per_evaluation`` measured on
    this machine with a batch of :data:`TIMING_BATCH` copies of the first image.
    """

    method: str
    images: int
    evaluations: int
    pass_kind: str  # "forward" or "forward+backward"
    seconds_per_evaluation: float
    seconds: float
    device: str
    how: str = f"evaluations per image × seconds per sample of a timed pass of {TIMING_BATCH} samples"

    def text(self) -> str:
        """One line for a learner: the estimate and what it is made of."""
        per_image = "" if self.images == 1 else f" × {self.images} images"
        return (
            f"≈ {duration(self.seconds)}: {self.evaluations:,} {self.pass_kind} pass(es) per image{per_image} × "
            f"{self.seconds_per_evaluation * 1000:.1f} ms measured on {self.device}"
        )


def evaluations_per_image(method: str, params: dict[str, Any], input_size: tuple[int, int]) -> int:
    """Model evaluations one image costs with ``method`` and ``params`` (its declared ``cost``)."""
    return get_method(method).evaluations(params, input_size)


def estimate_cost(classifier: Classifier, images: ImageBatch, method: str, **params: Any) -> CostEstimate:
    """Estimate the seconds :func:`explainer.explain` will need, from one timed pass on ``images``.

    The pass time is measured once per model, input shape, device and pass kind, then reused.
    Unknown methods and parameters raise the same errors as ``explain``.
    """
    spec = get_method(method)
    resolved = spec.resolve(params)
    pixels = classifier.to_pixels(images)
    size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
    return _estimate(classifier, pixels, spec, spec.evaluations(resolved, size))


def _estimate(classifier: Classifier, pixels: torch.Tensor, spec: MethodSpec, evaluations: int) -> CostEstimate:
    forward_only = bool(spec.forward_only)
    per_sample = _pass_seconds(classifier, pixels[:1], forward_only)
    return CostEstimate(
        method=spec.name,
        images=int(pixels.shape[0]),
        evaluations=evaluations,
        pass_kind="forward" if forward_only else "forward+backward",
        seconds_per_evaluation=per_sample,
        seconds=per_sample * evaluations * int(pixels.shape[0]),
        device=str(classifier.device),
    )


def check_budget(
    classifier: Classifier,
    images: ImageBatch,
    method: str,
    params: dict[str, Any] | None = None,
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS,
) -> CostEstimate | None:
    """Refuse, before any work, a call of ``method`` on ``images`` estimated to take over ``budget_seconds``.

    Raises InputError with the estimate, the parameter that drives it and the fix. Returns the
    estimate when one was made; None when the budget is None (no limit) or the call needs at most
    :data:`UNTIMED_EVALUATIONS` model evaluations in all (not worth a timed pass).
    """
    spec = get_method(method)
    resolved = spec.resolve(params or {})
    if budget_seconds is None:
        return None
    if isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float)) or not budget_seconds > 0:
        raise InputError(f"budget_seconds must be a positive number of seconds or None (no limit), got {budget_seconds!r}.")
    pixels = classifier.to_pixels(images)
    size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
    evaluations = spec.evaluations(resolved, size)
    if evaluations * int(pixels.shape[0]) <= UNTIMED_EVALUATIONS:
        return None
    cost = _estimate(classifier, pixels, spec, evaluations)
    if cost.seconds <= budget_seconds:
        return cost
    raise InputError(
        f"{spec.name} on {cost.images} image(s) would take {cost.text()} – over the time budget of "
        f"{duration(budget_seconds)}. {_cheaper(spec, resolved, size, evaluations)}Use fewer images, or pass "
        "budget_seconds=None (no limit; on the command line --budget 0) or a larger budget to run it anyway."
    )


def _cheaper(spec: MethodSpec, resolved: dict[str, Any], size: tuple[int, int], evaluations: int) -> str:
    """A sentence naming the parameters whose defaults cost less ("… with n_steps=50 (the default) it needs 52")."""
    hints = []
    for param in spec.params:
        if param.type not in (int, float) or resolved[param.name] == param.default:
            continue
        fewer = spec.evaluations({**resolved, param.name: param.default}, size)
        if fewer < evaluations:
            hints.append(f"with {param.name}={param.default!r} (the default) it needs {fewer:,}")
    return f"It needs {evaluations:,} evaluations per image; {'; '.join(hints)}. " if hints else ""


def _pass_seconds(classifier: Classifier, pixel: torch.Tensor, forward_only: bool) -> float:
    """Seconds per sample of one pass over TIMING_BATCH copies of ``pixel`` (after one warm-up pass)."""
    module = classifier.module
    key = (tuple(pixel.shape[1:]), str(classifier.device), forward_only)
    cached = _TIMINGS.setdefault(module, {})
    if key in cached:
        return cached[key]
    batch = classifier.normalize(pixel).to(classifier.device).repeat(TIMING_BATCH, 1, 1, 1)
    timings = []
    with eval_mode(module):
        for _ in range(2):  # the first pass warms up allocators and kernels
            started = time.perf_counter()
            if forward_only:
                with torch.inference_mode():
                    module(batch)
            else:
                with torch.inference_mode(False), torch.enable_grad():
                    inputs = batch.clone().requires_grad_(True)
                    torch.autograd.grad(module(inputs)[:, 0].sum(), inputs)
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            timings.append(time.perf_counter() - started)
    cached[key] = timings[-1] / TIMING_BATCH
    return cached[key]


