"""Attribution engine: one registry of methods and ``explain(classifier, images, method=...)``.

Captum does the work wherever Captum has the method; Grad-CAM++ is implemented here. Every call
is batched, keeps memory inside a budget (model evaluations per pass are derived from the
activation memory of one sample, measured once per model and input shape), leaves no hook behind
and never changes the user's model. DeepLIFT and guided backprop run on a private copy whose
in-place operations are switched off (see :func:`_private_copy`).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from explainer.errors import ExplainerError, InputError
from explainer.models.layers import LayerInfo, describe_layer, find_cam_layer

if TYPE_CHECKING:
    from explainer.models import Classifier, ImageBatch

#: Memory for one call's activations when the caller gives no budget, on a CPU (MiB).
CPU_MEMORY_BUDGET_MB = 1024
#: Share of the free GPU memory one call may use when the caller gives no budget.
GPU_MEMORY_SHARE = 0.5
#: On a CPU, forward-only passes run slower per image once their activations outgrow the caches
#: (efficientnet_lite0 at 224 px, 1 thread: 18.8 ms/image at batch 4, 24.4 at 16, 48.7 at 64), so
#: perturbation methods keep a pass under this many MiB of activations there.
CPU_FORWARD_PASS_MB = 64
#: Backward passes hold gradient buffers on top of the saved activations; measured peaks of
#: Integrated Gradients on efficientnet_lite0 stay below saved bytes × this factor.
BACKWARD_OVERHEAD = 1.25
#: A forward-only pass holds a few activations at once (input, output, skip connection, scratch).
FORWARD_LIVE_ACTIVATIONS = 4
#: Baselines (reference images) understood by IG, DeepLIFT, GradientSHAP, occlusion and ablation.
BASELINES = ("zero", "black", "white", "blur")


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

    def heatmap(self, absolute: bool = False) -> torch.Tensor:
        """One map per image ``(N, H, W)``: the channel sum (signed) or the sum of absolute values.

        CAM methods store their map in every channel, so their heatmap is C × the CAM.
        """
        values = self.attributions.abs() if absolute else self.attributions
        return values.sum(dim=1).float()

    @property
    def spec(self) -> MethodSpec:
        """The registry entry of :attr:`method`."""
        return METHODS[self.method]


# ---------------------------------------------------------------------------- the registry
@dataclass
class _Job:
    """One chunk of images for a method runner."""

    module: nn.Module
    inputs: torch.Tensor
    targets: list[int]
    params: dict[str, Any]
    samples_per_pass: int
    layer: LayerInfo | None
    mean: torch.Tensor  # (1, C, 1, 1) normalization of the classifier, on the inputs' device
    std: torch.Tensor

    @property
    def per_image(self) -> int:
        """Model evaluations per image that fit in one pass."""
        return max(1, self.samples_per_pass // len(self.targets))


@dataclass
class _Output:
    attributions: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    delta: torch.Tensor | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A registered attribution method: what it is, its defaults and how it runs."""

    name: str
    title: str
    kind: str  # "gradient", "perturbation" or "cam"
    signed: bool  # True when attributions carry a sign (show with a diverging colour scale)
    description: str
    defaults: dict[str, Any]
    run: Callable[[_Job], _Output] = field(repr=False)
    private_copy: bool = False  # runs on a copy with in-place ops off (DeepLIFT, guided backprop)

    @property
    def forward_only(self) -> bool:
        """Perturbation methods only evaluate the model; they never need gradients."""
        return self.kind == "perturbation"


def _captum():
    """captum.attr, imported on first use so ``import explainer`` stays quick."""
    import captum.attr

    return captum.attr


def _run_saliency(job: _Job) -> _Output:
    return _Output(_captum().Saliency(job.module).attribute(job.inputs, target=job.targets, abs=True))


def _run_input_x_gradient(job: _Job) -> _Output:
    return _Output(_captum().InputXGradient(job.module).attribute(job.inputs, target=job.targets))


def _run_integrated_gradients(job: _Job) -> _Output:
    p = job.params
    attributions, delta = _captum().IntegratedGradients(job.module).attribute(
        job.inputs,
        baselines=_baseline(job, p["baseline"]),
        target=job.targets,
        n_steps=p["n_steps"],
        method=p["integration"],
        internal_batch_size=job.samples_per_pass,
        return_convergence_delta=True,
    )
    return _Output(attributions, {}, delta)


def _run_smoothgrad(job: _Job) -> _Output:
    p = job.params
    tunnel = _captum().NoiseTunnel(_captum().Saliency(job.module))
    batch = min(job.per_image, p["n_samples"])
    with _seeded(job.inputs.device, p["seed"]):
        attributions = tunnel.attribute(
            job.inputs,
            nt_type="smoothgrad",
            nt_samples=p["n_samples"],
            nt_samples_batch_size=batch,
            stdevs=_noise_std(job, p["noise"]),
            target=job.targets,
            abs=True,
        )
    return _Output(attributions, {"nt_samples_batch_size": batch})


def _run_gradient_shap(job: _Job) -> _Output:
    # GradientShap expands every input by n_samples at once; split the samples to bound memory.
    # Its result is the mean over samples, so a size-weighted mean of the chunks is exact.
    p = job.params
    if p["baseline"] == "blur":
        raise InputError(
            "gradient_shap draws baselines from one shared distribution; use baseline='zero', 'black' or 'white'."
        )
    explainer = _captum().GradientShap(job.module)
    baselines = _baseline(job, p["baseline"], job.inputs[:1])
    total = torch.zeros_like(job.inputs)
    batch = min(job.per_image, p["n_samples"])
    with _seeded(job.inputs.device, p["seed"]):
        for start in range(0, p["n_samples"], batch):
            count = min(batch, p["n_samples"] - start)
            part = explainer.attribute(
                job.inputs, baselines=baselines, n_samples=count, stdevs=_noise_std(job, p["noise"]), target=job.targets
            )
            total += part * count
    return _Output(total / p["n_samples"], {"n_samples_per_pass": batch})


def _run_deeplift(job: _Job) -> _Output:
    baselines = _baseline(job, job.params["baseline"])
    return _Output(_captum().DeepLift(job.module).attribute(job.inputs, baselines=baselines, target=job.targets))


def _run_guided_backprop(job: _Job) -> _Output:
    return _Output(_captum().GuidedBackprop(job.module).attribute(job.inputs, target=job.targets))


def occlusion_window(params: dict[str, Any], height: int, width: int) -> tuple[int, int]:
    """Occlusion's (window, stride): as given, else a window of 1/7 of the shorter side and half-window stride."""
    window = params["window"] or max(2, round(min(height, width) / 7))
    return window, params["stride"] or max(1, window // 2)


def _run_occlusion(job: _Job) -> _Output:
    p = job.params
    channels, height, width = job.inputs.shape[1:]
    window, stride = occlusion_window(p, height, width)
    if window > min(height, width):
        raise InputError(f"occlusion window={window} is larger than the {height}×{width} input; use a smaller one.")
    attributions = _captum().Occlusion(job.module).attribute(
        job.inputs,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=_baseline(job, p["baseline"]),
        target=job.targets,
        perturbations_per_eval=job.per_image,
    )
    return _Output(attributions, {"window": window, "stride": stride, "perturbations_per_eval": job.per_image})


def _run_feature_ablation(job: _Job) -> _Output:
    p = job.params
    mask = _segments(job)
    attributions = _captum().FeatureAblation(job.module).attribute(
        job.inputs,
        baselines=_baseline(job, p["baseline"]),
        target=job.targets,
        feature_mask=mask,
        perturbations_per_eval=job.per_image,
    )
    return _Output(attributions, {"segments_found": int(mask.max()) + 1, "perturbations_per_eval": job.per_image})


def _run_gradcam(job: _Job) -> _Output:
    assert job.layer is not None
    with _cam_layer(job.module, job.layer) as layer:
        cam = _captum().LayerGradCam(job.module, layer).attribute(
            job.inputs, target=job.targets, relu_attributions=True
        )
    return _Output(_upsample(cam, job.inputs))


def _run_guided_gradcam(job: _Job) -> _Output:
    assert job.layer is not None
    with _cam_layer(job.module, job.layer) as layer:
        attributions = _captum().GuidedGradCam(job.module, layer).attribute(
            job.inputs, target=job.targets, interpolate_mode="bilinear"
        )
    return _Output(attributions)


def _run_gradcam_plus_plus(job: _Job) -> _Output:
    """Grad-CAM++ (Chattopadhyay et al. 2018) with the closed form of their exponential score.

    With g = ∂score/∂A: α = g² / (2g² + Σ_ab A_ab · g³), w_k = Σ_ij α_kij · ReLU(g_kij),
    map = ReLU(Σ_k w_k A_k).
    """
    assert job.layer is not None
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        captured.append(output)
        return output.clone()  # later in-place ops must not modify the captured map

    inputs = job.inputs.detach().requires_grad_(True)  # a graph even when the weights are frozen
    with _cam_layer(job.module, job.layer) as layer:
        handle = layer.register_forward_hook(capture)
        try:
            logits = job.module(inputs)
        finally:
            handle.remove()
    activations = captured[0]
    index = torch.as_tensor(job.targets, device=logits.device).view(-1, 1)
    (grads,) = torch.autograd.grad(logits.gather(1, index).sum(), activations)
    grads2 = grads.pow(2)
    denominator = 2 * grads2 + activations.sum(dim=(2, 3), keepdim=True) * grads2 * grads
    alpha = grads2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    return _Output(_upsample(cam.detach(), job.inputs))


_BASELINE_DEFAULTS = {"baseline": "zero"}

#: name → MethodSpec. Adding a method is one entry here.
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "saliency", "Saliency", "gradient", False,
            "|∂ score / ∂ pixel|: how strongly a tiny change of each pixel moves the class score "
            "(Simonyan et al. 2014).",
            {}, _run_saliency,
        ),
        MethodSpec(
            "input_x_gradient", "Input × Gradient", "gradient", True,
            "Input times gradient: a first-order estimate of each pixel's contribution.",
            {}, _run_input_x_gradient,
        ),
        MethodSpec(
            "integrated_gradients", "Integrated Gradients", "gradient", True,
            "Gradients averaged along a straight path from a baseline image to the input, times "
            "(input − baseline); the attributions add up to the score difference (Sundararajan et al. 2017).",
            {"n_steps": 50, "integration": "gausslegendre", **_BASELINE_DEFAULTS}, _run_integrated_gradients,
        ),
        MethodSpec(
            "smoothgrad", "SmoothGrad", "gradient", False,
            "Saliency averaged over noisy copies of the input, which removes gradient speckle "
            "(Smilkov et al. 2017). noise is the standard deviation in pixel units (0–1 range).",
            {"n_samples": 25, "noise": 0.15, "seed": 0}, _run_smoothgrad,
        ),
        MethodSpec(
            "gradient_shap", "GradientSHAP", "gradient", True,
            "Gradients at random points between noisy inputs and a baseline, times (input − baseline); "
            "approximates SHAP values (Lundberg & Lee 2017).",
            {"n_samples": 20, "noise": 0.1, "seed": 0, **_BASELINE_DEFAULTS}, _run_gradient_shap,
        ),
        MethodSpec(
            "deeplift", "DeepLIFT", "gradient", True,
            "Differences from a baseline propagated with the rescale rule through every nonlinearity "
            "(Shrikumar et al. 2017).",
            dict(_BASELINE_DEFAULTS), _run_deeplift, private_copy=True,
        ),
        MethodSpec(
            "guided_backprop", "Guided Backprop", "gradient", True,
            "Gradients with negative values stopped at every activation (Springenberg et al. 2015); "
            "sharp, but largely independent of the model's weights (Adebayo et al. 2018).",
            {}, _run_guided_backprop, private_copy=True,
        ),
        MethodSpec(
            "occlusion", "Occlusion", "perturbation", True,
            "Drop of the class score when a sliding square patch is replaced by the baseline "
            "(Zeiler & Fergus 2014). window/stride in pixels; default window = input/7, stride = window/2.",
            {"window": None, "stride": None, **_BASELINE_DEFAULTS}, _run_occlusion,
        ),
        MethodSpec(
            "feature_ablation", "Feature ablation", "perturbation", True,
            "Drop of the class score when each superpixel (SLIC) or grid patch is replaced by the baseline.",
            {"segmentation": "slic", "n_segments": 50, "compactness": 10.0, **_BASELINE_DEFAULTS},
            _run_feature_ablation,
        ),
        MethodSpec(
            "gradcam", "Grad-CAM", "cam", False,
            "Feature maps of a late layer weighted by their mean gradient, ReLU, upsampled to the image "
            "(Selvaraju et al. 2017).",
            {}, _run_gradcam,
        ),
        MethodSpec(
            "guided_gradcam", "Guided Grad-CAM", "cam", True,
            "Guided backprop multiplied by the upsampled Grad-CAM map (Selvaraju et al. 2017).",
            {}, _run_guided_gradcam, private_copy=True,
        ),
        MethodSpec(
            "gradcam_plus_plus", "Grad-CAM++", "cam", False,
            "Grad-CAM with position-wise weights from higher-order gradients; covers several instances "
            "of a class better (Chattopadhyay et al. 2018).",
            {}, _run_gradcam_plus_plus,
        ),
    )
}


def list_methods() -> list[str]:
    """Names of the registered attribution methods, in registry order."""
    return list(METHODS)


# ------------------------------------------------------------------------------- explain()
def explain(
    classifier: Classifier,
    images: ImageBatch,
    method: str = "integrated_gradients",
    target: int | str | Sequence[int | str] | None = None,
    *,
    layer: str | None = None,
    internal_batch_size: int | None = None,
    memory_budget_mb: float | None = None,
    **params: Any,
) -> Explanation:
    """Attribute the classifier's score for ``target`` to the pixels of ``images``.

    ``images``: whatever ``classifier.to_pixels`` takes (paths, PIL images, arrays, a list of
    them, or a pixel tensor in [0, 1]). ``target``: None (the predicted class of each image), a
    class index, a label, or a list with one per image. ``layer``: the CAM layer (CAM methods
    only; default :func:`explainer.layers.find_cam_layer`). ``internal_batch_size``: model
    evaluations per forward/backward pass; by default derived from ``memory_budget_mb``
    (1 GiB on a CPU, half the free memory on a GPU) and the measured memory of one sample.
    ``params`` override the method's defaults (``METHODS[method].defaults``).
    """
    spec = _method(method)
    resolved = _resolve_params(spec, params)
    if layer is not None and spec.kind != "cam":
        cams = ", ".join(n for n, s in METHODS.items() if s.kind == "cam")
        raise InputError(f"layer= only applies to CAM methods ({cams}); {method!r} attributes to the input pixels.")
    if internal_batch_size is not None and (not isinstance(internal_batch_size, int) or internal_batch_size < 1):
        raise InputError(f"internal_batch_size must be a positive integer, got {internal_batch_size!r}.")
    if memory_budget_mb is not None and not memory_budget_mb > 0:
        raise InputError(f"memory_budget_mb must be positive, got {memory_budget_mb!r}.")

    started = time.perf_counter()
    module = classifier.module
    device = classifier.device
    with torch.inference_mode(False):
        pixels = classifier.to_pixels(images).clone()
        inputs = classifier.normalize(pixels)
        info = (describe_layer(classifier, layer) if layer else find_cam_layer(classifier)) if spec.kind == "cam" else None
        cost = sample_memory(classifier, tuple(inputs.shape[1:]))
        budget = _budget_bytes(device, memory_budget_mb)
        targets = _resolve_targets(classifier, inputs, target, _samples_per_pass(budget, cost.forward_bytes, True, device))
        per_sample = cost.forward_bytes if spec.forward_only else cost.backward_bytes
        samples_per_pass = internal_batch_size or _samples_per_pass(budget, per_sample, spec.forward_only, device)
        was_training = module.training
        module.eval()
        try:
            runner_module = _copy_for(spec, classifier) if spec.private_copy else module
            output = _run_chunks(spec, runner_module, inputs.to(device), targets, resolved, samples_per_pass, info, classifier)
        finally:
            module.train(was_training)
    params_used = {
        **resolved,
        **output.settings,
        "internal_batch_size": samples_per_pass,
        "memory_budget_mb": None if internal_batch_size else round(budget / 2**20, 1),
        "estimated_mb_per_sample": round(per_sample / 2**20, 2),
    }
    if info is not None:
        params_used["layer"] = info.name
    attributions = output.attributions
    _warn_empty_maps(spec, classifier, attributions, info)
    if attributions.shape[1] != inputs.shape[1]:  # CAM maps: one channel → every channel
        attributions = attributions.expand(-1, inputs.shape[1], -1, -1)
    return Explanation(
        method=spec.name,
        attributions=attributions.contiguous(),
        inputs=inputs,
        pixels=pixels,
        targets=targets,
        labels=[classifier.labels[t] for t in targets],
        params=params_used,
        seconds=time.perf_counter() - started,
        device=str(device),
        model_name=classifier.name,
        layer=info.name if info is not None else None,
        convergence_delta=output.delta,
    )


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
    samples_per_pass: int,
    info: LayerInfo | None,
    classifier: Classifier,
) -> _Output:
    """Run the method on chunks of at most ``samples_per_pass`` images; Captum errors become ExplainerErrors."""
    chunk = min(len(targets), samples_per_pass)
    maps: list[torch.Tensor] = []
    deltas: list[torch.Tensor] = []
    settings: dict[str, Any] = {}
    for start in range(0, len(targets), chunk):
        job = _Job(
            module, inputs[start : start + chunk], targets[start : start + chunk], params, samples_per_pass, info,
            mean=torch.tensor(classifier.mean, device=inputs.device).view(1, -1, 1, 1),
            std=torch.tensor(classifier.std, device=inputs.device).view(1, -1, 1, 1),
        )
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_CAPTUM_NOTICES, category=UserWarning)
                if spec.forward_only:
                    with torch.inference_mode():
                        out = spec.run(job)
                else:
                    job.inputs = job.inputs.detach().requires_grad_(True)
                    with torch.enable_grad():
                        out = spec.run(job)
        except ExplainerError:
            raise
        except torch.OutOfMemoryError:
            raise ExplainerError(
                f"{spec.title} ran out of memory on {classifier.name} with {samples_per_pass} samples per pass; "
                "pass a smaller memory_budget_mb= or internal_batch_size=."
            ) from None
        except Exception as exc:  # Captum and torch raise many types; the user gets one clear message
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ExplainerError(
                f"{spec.title} ({spec.name}) failed on model {classifier.name}: {type(exc).__name__}: {detail}. "
                "Try another method; explainer.list_methods() names them."
            ) from None
        maps.append(out.attributions.detach().to("cpu", torch.float32).clone())
        if out.delta is not None:
            deltas.append(out.delta.detach().to("cpu", torch.float32).clone())
        settings = settings or out.settings
    return _Output(torch.cat(maps), {**settings, "images_per_pass": chunk}, torch.cat(deltas) if deltas else None)


# ------------------------------------------------------------------------ input handling
def _method(name: str) -> MethodSpec:
    if name in METHODS:
        return METHODS[name]
    import difflib

    close = difflib.get_close_matches(str(name).lower(), list(METHODS), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(f"Unknown attribution method {name!r}.{hint} Valid methods: {', '.join(METHODS)}.")


_POSITIVE_INTS = ("n_steps", "n_samples", "n_segments")
_OPTIONAL_POSITIVE_INTS = ("window", "stride")
_CHOICES = {
    "baseline": BASELINES,
    "segmentation": ("slic", "grid"),
    "integration": ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"),
}


def _resolve_params(spec: MethodSpec, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "none"
        raise InputError(f"{spec.name} does not take {', '.join(unknown)}; its parameters are: {valid}.")
    resolved = {**spec.defaults, **params}
    for key, value in resolved.items():
        if key in _POSITIVE_INTS and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise InputError(f"{key} must be a positive integer, got {value!r}.")
        if key in _OPTIONAL_POSITIVE_INTS and value is not None and not (isinstance(value, int) and value >= 1):
            raise InputError(f"{key} must be a positive integer (pixels) or None, got {value!r}.")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise InputError(f"{key}={value!r} is not supported; choose one of: {', '.join(_CHOICES[key])}.")
        if key == "seed" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise InputError(f"seed must be an integer, got {value!r}.")
        if key in ("noise", "compactness") and not (isinstance(value, (int, float)) and value >= 0):
            raise InputError(f"{key} must be a non-negative number, got {value!r}.")
    return resolved


def _resolve_targets(
    classifier: Classifier, inputs: torch.Tensor, target: int | str | Sequence[int | str] | None, batch_size: int
) -> list[int]:
    """One class index per image: predicted (forward pass under inference mode), given, or one per image."""
    count = inputs.shape[0]
    if target is None:
        module, device = classifier.module, classifier.device
        was_training = module.training
        module.eval()
        try:
            with torch.inference_mode():
                logits = torch.cat([module(chunk.to(device)) for chunk in inputs.split(batch_size)])
        finally:
            module.train(was_training)
        return [int(i) for i in logits.argmax(dim=1).cpu()]
    if isinstance(target, (list, tuple)):
        if len(target) != count:
            raise InputError(f"target has {len(target)} entries but {count} image(s) were given; give one per image.")
        return [classifier.class_index(t) for t in target]
    if isinstance(target, torch.Tensor):
        return _resolve_targets(classifier, inputs, target.flatten().tolist() if target.ndim else int(target), batch_size)
    return [classifier.class_index(target)] * count  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ baselines
def _baseline(job: _Job, name: str, inputs: torch.Tensor | None = None) -> torch.Tensor:
    """A reference image in model-input space shaped like ``inputs`` (default: the job's inputs).

    "zero": all zeros (the data mean for normalized models, Captum's default); "black"/"white":
    pixels 0/1 normalized; "blur": a Gaussian blur (sigma = 1/20 of the image side) of the input.
    """
    inputs = job.inputs if inputs is None else inputs
    if name == "zero":
        return torch.zeros_like(inputs)
    if name in ("black", "white"):
        value = 0.0 if name == "black" else 1.0
        return ((value - job.mean) / job.std).expand_as(inputs).contiguous()
    from torchvision.transforms.functional import gaussian_blur

    sigma = max(inputs.shape[-2:]) / 20
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * ((min(inputs.shape[-2:]) - 1) // 2) + 1)
    return gaussian_blur(inputs, [kernel, kernel], [sigma, sigma]) if kernel >= 3 else inputs.clone()


@contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Reproducible random draws inside the block; the caller's random state is restored afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _noise_std(job: _Job, noise: float) -> float:
    """Noise given in pixel units (0–1 range) as a standard deviation in model-input units."""
    return float(noise) / float(job.std.mean())


def _segments(job: _Job) -> torch.Tensor:
    """A feature mask ``(N, 1, H, W)``: SLIC superpixels of each image, or square grid patches."""
    p = job.params
    count, channels, height, width = job.inputs.shape
    if p["segmentation"] == "grid":
        side = max(1, round(math.sqrt(p["n_segments"])))
        rows = torch.arange(height, device=job.inputs.device) * side // height
        cols = torch.arange(width, device=job.inputs.device) * side // width
        grid = rows.view(-1, 1) * side + cols.view(1, -1)
        return grid.expand(count, 1, height, width).contiguous()
    from skimage.segmentation import slic

    pixels = (job.inputs.detach() * job.std + job.mean).clamp(0, 1).float().cpu().permute(0, 2, 3, 1).numpy()
    masks = [
        slic(
            image if channels > 1 else image[..., 0],
            n_segments=p["n_segments"],
            compactness=p["compactness"],
            start_label=0,
            channel_axis=-1 if channels > 1 else None,
        )
        for image in pixels
    ]
    return torch.stack([torch.from_numpy(mask) for mask in masks]).long().unsqueeze(1).to(job.inputs.device)


# ---------------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class SampleMemory:
    """Measured activation memory of one sample through a model (bytes)."""

    saved_bytes: int  # tensors autograd keeps for the backward pass
    largest_bytes: int  # the largest single activation

    @property
    def backward_bytes(self) -> int:
        """Budget for one sample in a forward + backward pass."""
        return max(1, int(self.saved_bytes * BACKWARD_OVERHEAD))

    @property
    def forward_bytes(self) -> int:
        """Budget for one sample in a forward-only pass."""
        return max(1, self.largest_bytes * FORWARD_LIVE_ACTIVATIONS)


_MEMORY: weakref.WeakKeyDictionary[nn.Module, dict[tuple, SampleMemory]] = weakref.WeakKeyDictionary()


def sample_memory(classifier: Classifier, shape: tuple[int, ...]) -> SampleMemory:
    """Measure (once per model, input shape and device) the activation memory of one sample.

    One forward pass of a zero image records every tensor autograd saves for the backward pass
    (distinct storages, weights excluded). Memory grows linearly with the batch, so a budget
    divided by this gives the samples per pass.
    """
    module = classifier.module
    key = (tuple(shape), str(classifier.device))
    cached = _MEMORY.setdefault(module, {})
    if key in cached:
        return cached[key]
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    weights = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}
    sample = torch.zeros(1, *shape, device=classifier.device, requires_grad=True)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(sample)
    finally:
        module.train(was_training)
    activations = [size for pointer, size in storages.items() if pointer not in weights] or [sample.numel() * 4]
    cached[key] = SampleMemory(saved_bytes=sum(activations), largest_bytes=max(activations))
    return cached[key]


def _samples_per_pass(budget: float, per_sample: int, forward_only: bool, device: torch.device) -> int:
    """Model evaluations per pass that fit the budget (and, for forward passes on a CPU, the caches)."""
    if forward_only and device.type == "cpu":
        budget = min(budget, CPU_FORWARD_PASS_MB * 2**20)
    return max(1, int(budget // per_sample))


def _budget_bytes(device: torch.device, memory_budget_mb: float | None) -> float:
    """The caller's budget, else 1 GiB on a CPU or half the free memory of the GPU."""
    if memory_budget_mb is not None:
        return float(memory_budget_mb) * 2**20
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free * GPU_MEMORY_SHARE
    return CPU_MEMORY_BUDGET_MB * 2**20


# ------------------------------------------------------------------------- model handling
_COPIES: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
#: Elementwise activations Captum's DeepLIFT and guided-backprop rules do not recognise.
_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.Hardtanh)


def _private_copy(module: nn.Module) -> nn.Module:
    """A cached copy of ``module`` for DeepLIFT and guided backprop, with the user's current weights.

    In the copy every ``inplace`` flag is off (Captum's backward hooks fail on in-place
    activations) and activations Captum does not know (ReLU6, GELU, SiLU, ...) are presented as
    ``nn.ReLU`` modules that compute the original function, so Captum applies its rescale rule
    (DeepLIFT) or its negative-gradient stop (guided backprop) to them instead of passing them as
    plain gradients. The copy is rebuilt when the model's structure or device changes and its
    weights are refreshed from the model on every call.
    """
    layout = [(name, tuple(t.shape), t.dtype, t.device) for name, t in module.state_dict().items()]
    cached = _COPIES.get(module)
    if cached is None or getattr(cached, "_explainer_layout", None) != layout:
        cached = copy.deepcopy(module)
        for name, sub in list(cached.named_modules()):
            if isinstance(getattr(sub, "inplace", None), bool):
                sub.inplace = False
            if name and (type(sub) in _ACTIVATIONS or _is_timm_activation(sub)):
                cached.set_submodule(name, _relu_surrogate(sub))
        cached.requires_grad_(False)
        cached._explainer_layout = layout  # type: ignore[attr-defined]
        _COPIES[module] = cached
    with torch.no_grad():
        for source, target in zip(module.state_dict().values(), cached.state_dict().values()):
            target.copy_(source)
    return cached.eval()


def _copy_for(spec: MethodSpec, classifier: Classifier) -> nn.Module:
    try:
        return _private_copy(classifier.module)
    except Exception as exc:  # deepcopy of exotic modules (compiled, with unpicklable attributes)
        raise ExplainerError(
            f"{spec.title} needs a private copy of {classifier.name} (to switch off in-place operations) and "
            f"copy.deepcopy failed: {type(exc).__name__}: {exc}. Use a method that runs on the model itself, "
            "such as integrated_gradients or input_x_gradient."
        ) from None


def _is_timm_activation(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.layers.activations") and not list(module.children())


def _relu_surrogate(activation: nn.Module) -> nn.ReLU:
    """An ``nn.ReLU`` instance whose forward computes ``activation`` (for Captum's type checks)."""
    surrogate = nn.ReLU()
    surrogate.forward = activation.forward  # type: ignore[method-assign]
    return surrogate


@contextmanager
def _cam_layer(module: nn.Module, info: LayerInfo) -> Iterator[nn.Module]:
    """The module whose output is the CAM layer's ``(N, C, h, w)`` map while the block runs.

    Spatial layers are used as they are. For token layers a forward hook routes the patch tokens
    through a standalone grid module (``LayerInfo.to_grid`` and back), so Captum and Grad-CAM++
    see a map; the hook is removed on exit, error or not.
    """
    layer = module.get_submodule(info.name)
    if info.kind == "spatial":
        yield layer
        return
    grid = nn.Identity()

    def through_grid(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        patches = grid(info.to_grid(output)).flatten(2).transpose(1, 2)
        return torch.cat([output[:, : info.prefix_tokens], patches], dim=1)

    handle = layer.register_forward_hook(through_grid)
    try:
        yield grid
    finally:
        handle.remove()


def _upsample(cam: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """A low-resolution map ``(N, 1, h, w)`` resized bilinearly to the input's height and width."""
    return F.interpolate(cam, size=tuple(inputs.shape[-2:]), mode="bilinear", align_corners=False)
