"""How long an attribution will take, before running it: model evaluations × a measured pass time.

Notebook use::

    cost = explainer.estimate_cost(model, photo, "occlusion")
    cost.seconds, cost.text()     # e.g. 41.3, '≈ 41 s: 729 forward passes per image × 56.6 ms …'
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from explainer.explain.attribution import METHODS, _method, _resolve_params, occlusion_window

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: Samples per timed pass: small enough to be quick, large enough to amortise per-call overhead.
TIMING_BATCH = 4
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
            f"≈ {_duration(self.seconds)}: {self.evaluations:,} {self.pass_kind} pass(es) per image{per_image} × "
            f"{self.seconds_per_evaluation * 1000:.1f} ms measured on {self.device}"
        )


def evaluations_per_image(method: str, params: dict[str, Any], input_size: tuple[int, int]) -> int:
    """Model evaluations one image costs with ``method`` and its resolved ``params``."""
    if method not in METHODS:
        raise KeyError(method)
    if "n_steps" in params:  # Integrated Gradients, plus input and baseline for its convergence delta
        return int(params["n_steps"]) + 2
    if "n_samples" in params:
        return int(params["n_samples"])
    if method == "occlusion":
        height, width = input_size
        window, stride = occlusion_window(params, height, width)
        return ((height - window) // stride + 1) * ((width - window) // stride + 1) + 1
    if method == "feature_ablation":
        return int(params["n_segments"]) + 1
    return 2 if method == "guided_gradcam" else 1  # guided Grad-CAM = guided backprop + Grad-CAM


def estimate_cost(classifier: Classifier, images: ImageBatch, method: str, **params: Any) -> CostEstimate:
    """Estimate the seconds :func:`explainer.explain` will need, from one timed pass on ``images``.

    The pass time is measured once per model, input shape, device and pass kind, then reused.
    Unknown methods and parameters raise the same errors as ``explain``.
    """
    spec = _method(method)
    resolved = _resolve_params(spec, params)
    pixels = classifier.to_pixels(images)
    forward_only = spec.forward_only
    per_sample = _pass_seconds(classifier, pixels[:1], forward_only)
    evaluations = evaluations_per_image(method, resolved, tuple(pixels.shape[-2:]))
    return CostEstimate(
        method=method,
        images=int(pixels.shape[0]),
        evaluations=evaluations,
        pass_kind="forward" if forward_only else "forward+backward",
        seconds_per_evaluation=per_sample,
        seconds=per_sample * evaluations * int(pixels.shape[0]),
        device=str(classifier.device),
    )


def _pass_seconds(classifier: Classifier, pixel: torch.Tensor, forward_only: bool) -> float:
    """Seconds per sample of one pass over TIMING_BATCH copies of ``pixel`` (after one warm-up pass)."""
    module = classifier.module
    key = (tuple(pixel.shape[1:]), str(classifier.device), forward_only)
    cached = _TIMINGS.setdefault(module, {})
    if key in cached:
        return cached[key]
    batch = classifier.normalize(pixel).to(classifier.device).repeat(TIMING_BATCH, 1, 1, 1)
    was_training = module.training
    module.eval()
    try:
        timings = []
        for _ in range(2):  # the first pass warms up allocators and kernels
            started = time.perf_counter()
            if forward_only:
                with torch.inference_mode():
                    module(batch)
            else:
                with torch.inference_mode(False), torch.enable_grad():
                    inputs = batch.clone().requires_grad_(True)
                    module(inputs)[:, 0].sum().backward(inputs=[inputs])
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            timings.append(time.perf_counter() - started)
    finally:
        module.train(was_training)
    cached[key] = timings[-1] / TIMING_BATCH
    return cached[key]


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
