"""The ``explain(classifier, images, method=...)`` entry and its :class:`Explanation` result.

``explain`` looks the method up in the registry (:mod:`explainer.attribution.registry`), validates
its parameters against the method's schema, refuses work estimated to take longer than
``budget_seconds`` (:func:`explainer.attribution.estimate.check_budget`), splits the batch so one
pass fits the memory budget (:mod:`explainer.attribution.memory`), runs the method's runner on each
chunk and gives back CPU float32 maps. It leaves no hook behind and never changes the user's
model: it runs in eval mode and restores ``training``; methods declared with ``private_copy``
run on a copy (:mod:`explainer.attribution.private_copy`). The methods themselves live in
:mod:`explainer.attribution.methods` (Captum's in ``methods/captum.py``, Grad-CAM's in ``methods/gradcam.py``).

The names this module exported before the split (``METHODS``, ``MethodSpec``, ``list_methods``,
``sample_memory``, ``occlusion_window``, ``BASELINES``, ...) are still importable from here.
"""

from __future__ import annotations

import difflib
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from explainer.attribution.estimate import DEFAULT_BUDGET_SECONDS, check_budget
from explainer.attribution.memory import SampleMemory, budget_bytes, sample_memory, samples_per_pass
from explainer.attribution.methods.captum import occlusion_window
from explainer.attribution.private_copy import copy_for, private_copy
from explainer.attribution.registry import (
    METHODS,
    Job,
    MethodSpec,
    Output,
    Param,
    get_method,
    list_methods,
    register_method,
)
from explainer.baselines import BASELINES
from explainer.errors import ExplainerError, InputError
from explainer.guards import eval_mode, user_state_guard
from explainer.models.coerce import as_classifier
from explainer.models.layers import LayerInfo, describe_layer, find_cam_layer
from explainer.models.predictions import resolve_targets

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: Kept for code written against the single-module engine.
_private_copy = private_copy

__all__ = [
    "BASELINES",
    "METHODS",
    "Explanation",
    "Job",
    "MethodSpec",
    "Output",
    "Param",
    "SampleMemory",
    "explain",
    "get_method",
    "list_methods",
    "occlusion_window",
    "register_method",
    "sample_memory",
]


# --------------------------------------------------------------------------------- results
@dataclass
class Explanation:
    """Attribution maps for a batch of images and everything about how they were made."""

    method: str
    attributions: torch.Tensor  # (N, C, H, W) float32 CPU, aligned with inputs
    inputs: torch.Tensor  # (N, C, H, W) normalized model inputs, CPU
    pixels: torch.Tensor  # (N, C, H, W) in [0, 1], CPU
    targets: list[int]
    labels: list[str]
    params: dict[str, Any]
    seconds: float
    device: str
    model_name: str
    layer: str | None = None
    convergence_delta: torch.Tensor | None = None
    segments: torch.Tensor | None = None  # (N, 1, H, W) long superpixel ids (LIME, KernelSHAP), CPU
    #: The module that was explained (a weak reference: the explanation never keeps a model alive), so an
    #: explanation can be checked against the model it came from, not only against its name.
    module_ref: weakref.ReferenceType[nn.Module] | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (caches, Ray) without the weak reference, which cannot travel: a copy is checked by name."""
        return {**self.__dict__, "module_ref": None}

    def made_with(self, classifier: Classifier) -> bool | None:
        """True when these maps come from ``classifier``'s weights, False when not, None when unknowable.

        The same module object is the same model; another module (alive) is compared by
        :func:`explainer.models.sources.weights_fingerprint`; a module that no longer exists cannot be compared.
        """
        original = self.module_ref() if self.module_ref is not None else None
        if original is None:
            return None
        if original is classifier.module:
            return True
        from explainer.models.sources import weights_fingerprint

        return weights_fingerprint(original) == weights_fingerprint(classifier.module)

    def heatmap(self, absolute: bool = False) -> torch.Tensor:
        """One map per image ``(N, H, W)``: the channel sum (signed) or the sum of absolute values.

        CAM methods store their map in every channel, so their heatmap is C × the CAM.
        """
        values = self.attributions.abs() if absolute else self.attributions
        return values.sum(dim=1).float()

    @property
    def spec(self) -> MethodSpec:
        """The registry entry of :attr:`method`."""
        return get_method(self.method)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (no maps): method, model, targets, parameters, timing, shape."""
        delta = self.convergence_delta
        return {
            "method": self.method,
            "model_name": self.model_name,
            "targets": list(self.targets),
            "labels": list(self.labels),
            "params": dict(self.params),
            "layer": self.layer,
            "seconds": self.seconds,
            "device": self.device,
            "shape": list(self.attributions.shape),
            "convergence_delta": None if delta is None else [float(d) for d in delta.flatten()],
        }


# ------------------------------------------------------------------------------- explain()
#: explain's own keyword arguments (the rest go to the method).
_OWN_KEYWORDS = ("method", "target", "layer", "internal_batch_size", "memory_budget_mb", "budget_seconds")


def _check_keywords(spec: MethodSpec, params: dict[str, Any]) -> None:
    """A keyword neither explain nor the method takes: an InputError naming the closest of either."""
    taken = [p.name for p in spec.params]
    for key in params:
        if key not in taken:
            close = difflib.get_close_matches(key, [*_OWN_KEYWORDS, *taken], n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]}=?" if close else ""
            raise InputError(f"explain() has no argument {key!r} and {spec.name} takes no parameter {key!r}.{hint} "
                             f"explain takes {', '.join(_OWN_KEYWORDS)}; {spec.name} takes "
                             f"{', '.join(taken) or 'no parameters'} (get_method({spec.name!r}).params).")


def explain(
    classifier: Classifier,
    images: ImageBatch,
    method: str = "integrated_gradients",
    target: int | str | Sequence[int | str] | None = None,
    *,
    layer: str | None = None,
    internal_batch_size: int | None = None,
    memory_budget_mb: float | None = None,
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS,
    **params: Any,
) -> Explanation:
    """Attribute the classifier's score for ``target`` to the pixels of ``images``.

    ``images``: whatever ``classifier.to_pixels`` takes (paths, PIL images, arrays, a list of
    them, or a pixel tensor in [0, 1]). ``target``: None (the predicted class of each image), a
    class index, a label, or a list with one per image. ``layer``: the CAM layer (methods with
    ``needs_layer`` only; default :func:`explainer.models.layers.find_cam_layer`).
    ``internal_batch_size``: model evaluations per forward/backward pass; by default derived
    from ``memory_budget_mb`` (1 GiB on a CPU, half the free memory on a GPU) and the measured
    memory of one sample. ``budget_seconds``: refuse (InputError with the estimate and the fix)
    work estimated to take longer; None = no limit. ``params`` override the method's defaults
    (its :class:`Param` schema: ``get_method(method).params``).
    """
    classifier = as_classifier(classifier, caller="explain")
    spec = get_method(method)
    _check_keywords(spec, params)
    resolved = spec.resolve(params)
    _check_options(spec, layer, internal_batch_size, memory_budget_mb)
    started = time.perf_counter()
    module, device = classifier.module, classifier.device
    with torch.inference_mode(False):
        pixels = classifier.to_pixels(images).clone()
        if budget_seconds is not None:
            check_budget(classifier, pixels, spec.name, resolved, budget_seconds)
        inputs = classifier.normalize(pixels)
        info = (describe_layer(classifier, layer) if layer else find_cam_layer(classifier)) if spec.needs_layer else None
        memory = sample_memory(classifier, tuple(inputs.shape[1:]))
        budget = budget_bytes(device, memory_budget_mb)
        targets = _resolve_targets(classifier, inputs, target, samples_per_pass(budget, memory.forward_bytes, True, device))
        per_sample = memory.forward_bytes if spec.forward_only else memory.backward_bytes
        per_pass = internal_batch_size or samples_per_pass(budget, per_sample, bool(spec.forward_only), device)
        with user_state_guard(module):  # eval mode; training flags, .grad and hooks as the user left them
            runner_module = copy_for(spec, classifier) if spec.private_copy else module
            output = _run_chunks(spec, runner_module, inputs.to(device), targets, resolved, per_pass, info, classifier)
    params_used = {
        **resolved,
        **output.settings,
        "internal_batch_size": per_pass,
        "memory_budget_mb": None if internal_batch_size else round(budget / 2**20, 1),
        "estimated_mb_per_sample": round(per_sample / 2**20, 2),
    }
    if info is not None:
        params_used["layer"] = info.name
    attributions = output.attributions
    _warn_empty_maps(spec, classifier, attributions, info)
    if attributions.shape[1] != inputs.shape[1]:  # one map per image (CAMs): copy it into every channel
        attributions = attributions.expand(-1, inputs.shape[1], -1, -1)
    return Explanation(
        method=spec.name, attributions=attributions.contiguous(), inputs=inputs, pixels=pixels, targets=targets,
        labels=[classifier.labels[t] for t in targets], params=params_used, seconds=time.perf_counter() - started,
        device=str(device), model_name=classifier.name, layer=info.name if info is not None else None,
        convergence_delta=output.delta, segments=output.segments, module_ref=weakref.ref(classifier.module),
    )


def _check_options(
    spec: MethodSpec, layer: str | None, internal_batch_size: int | None, memory_budget_mb: float | None
) -> None:
    """InputError for options that do not fit the method or are out of range."""
    if layer is not None and not spec.needs_layer:
        cams = ", ".join(n for n, s in METHODS.items() if s.needs_layer)
        raise InputError(f"layer= only applies to CAM methods ({cams}); {spec.name!r} attributes to the input pixels.")
    if internal_batch_size is not None and (
        isinstance(internal_batch_size, bool) or not isinstance(internal_batch_size, int) or internal_batch_size < 1
    ):
        raise InputError(f"internal_batch_size must be a positive integer, got {internal_batch_size!r}.")
    if memory_budget_mb is not None and not memory_budget_mb > 0:
        raise InputError(f"memory_budget_mb must be positive, got {memory_budget_mb!r}.")


def _warn_empty_maps(spec: MethodSpec, classifier: Classifier, maps: torch.Tensor, info: LayerInfo | None) -> None:
    """Warn when a map is all zero: for CAM methods every position had negative evidence before the ReLU."""
    empty = [i for i, m in enumerate(maps) if not bool(m.any())]
    if not empty:
        return
    hint = (
        f"the weighted feature maps of layer {info.name!r} are ≤ 0 everywhere, so the ReLU leaves nothing (the "
        "layer holds no positive evidence for this class); try another layer=, another target or a gradient method"
        if info is not None else "the class score does not change with any pixel of it"
    )
    warnings.warn(f"{spec.title} map is all zero for image(s) {empty} on {classifier.name}: {hint}.", stacklevel=3)


#: Notices Captum prints on every call (hooks it sets and removes itself); not for the user.
_CAPTUM_NOTICES = r"(?s).*(Setting (forward, )?backward hooks|did not already require gradients)"


def _run_chunks(
    spec: MethodSpec,
    module: nn.Module,
    inputs: torch.Tensor,
    targets: list[int],
    params: dict[str, Any],
    per_pass: int,
    info: LayerInfo | None,
    classifier: Classifier,
) -> Output:
    """Run the method on chunks of at most ``per_pass`` images and join the outputs."""
    chunk = min(len(targets), per_pass)
    maps: list[torch.Tensor] = []
    deltas: list[torch.Tensor] = []
    segments: list[torch.Tensor] = []
    settings: dict[str, Any] = {}
    mean = torch.tensor(classifier.mean, device=inputs.device).view(1, -1, 1, 1)
    std = torch.tensor(classifier.std, device=inputs.device).view(1, -1, 1, 1)
    for start in range(0, len(targets), chunk):
        job = Job(module, inputs[start : start + chunk], targets[start : start + chunk], params, per_pass, info,
                  mean=mean, std=std)
        out = _run_one(spec, job, classifier)
        maps.append(out.attributions.detach().to("cpu", torch.float32).clone())
        if out.delta is not None:
            deltas.append(out.delta.detach().to("cpu", torch.float32).clone())
        if out.segments is not None:
            segments.append(out.segments.detach().to("cpu", torch.long))
        settings = settings or out.settings
    return Output(torch.cat(maps), {**settings, "images_per_pass": chunk}, torch.cat(deltas) if deltas else None,
                  torch.cat(segments) if segments else None)


def _run_one(spec: MethodSpec, job: Job, classifier: Classifier) -> Output:
    """One runner call under the right autograd mode; its errors become one clear ExplainerError."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CAPTUM_NOTICES, category=UserWarning)
            if spec.forward_only:
                with torch.inference_mode():
                    out = spec.runner(job)
            else:
                job.inputs = job.inputs.detach().requires_grad_(True)
                with torch.enable_grad():
                    out = spec.runner(job)
    except ExplainerError:
        raise
    except torch.OutOfMemoryError:
        raise ExplainerError(
            f"{spec.title} ran out of memory on {classifier.name} with {job.samples_per_pass} samples per pass; "
            "pass a smaller memory_budget_mb= or internal_batch_size=."
        ) from None
    except Exception as exc:  # Captum and torch raise many types; the user gets one clear message
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExplainerError(
            f"{spec.title} ({spec.name}) failed on model {classifier.name}: {type(exc).__name__}: {detail}. "
            "Try another method; explainer.list_methods() names them."
        ) from None
    if not isinstance(out, Output) or not isinstance(out.attributions, torch.Tensor):
        raise ExplainerError(f"The runner of {spec.name} returned {type(out).__name__}; it must return an "
                             "explainer.attribution.registry.Output with an attributions tensor.")
    expected = (len(job.targets), *job.inputs.shape[2:])
    got = tuple(out.attributions.shape)
    if len(got) != 4 or (got[0], *got[2:]) != expected or got[1] not in (1, job.inputs.shape[1]):
        raise ExplainerError(f"The runner of {spec.name} returned maps of shape {got}; expected "
                             f"({expected[0]}, {job.inputs.shape[1]} or 1, {expected[1]}, {expected[2]}).")
    return out


def _resolve_targets(
    classifier: Classifier, inputs: torch.Tensor, target: int | str | Sequence[int | str] | None, batch_size: int
) -> list[int]:
    """One class index per image: predicted (forward passes in eval and inference mode), given, or one per image."""
    if target is not None:
        return resolve_targets(classifier, target, count=int(inputs.shape[0]))
    module, device = classifier.module, classifier.device
    with eval_mode(module), torch.inference_mode():
        logits = torch.cat([module(chunk.to(device)) for chunk in inputs.split(batch_size)])
    return resolve_targets(classifier, None, logits)
