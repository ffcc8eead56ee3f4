"""Gradient and perturbation methods that Captum implements: one declaration and one runner each.

Importing this module registers them (:mod:`explainer.attribution.methods` imports it). The runner
contract is in :mod:`explainer.attribution.registry`; :func:`captum_attr` and :func:`segments` serve the
Grad-CAM and superpixel families too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from explainer.attribution.registry import Job, MethodSpec, Output, Param, register_method
from explainer.baselines import BASELINES  # the reference images IG, DeepLIFT, GradientSHAP, occlusion and ablation use
from explainer.errors import InputError

#: Integration rules of Integrated Gradients (Captum's names).
INTEGRATIONS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")

BASELINE = Param("baseline", str, "zero", choices=BASELINES,
                 help="reference image: zero (the data mean), black, white or a blur of the input")
SEED = Param("seed", int, 0, help="seed of the random draws (the global RNG is left as it was)")


def captum_attr() -> Any:
    """captum.attr, imported on first use so ``import explainer`` stays quick."""
    import captum.attr

    return captum.attr


# ---------------------------------------------------------------------------------- costs
def _steps_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return int(params["n_steps"]) + 2  # plus input and baseline for the convergence delta


def _samples_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return int(params["n_samples"])


def occlusion_window(params: Mapping[str, Any], height: int, width: int) -> tuple[int, int]:
    """Occlusion's (window, stride): as given, else a window of 1/7 of the shorter side and half-window stride."""
    window = params["window"] or max(2, round(min(height, width) / 7))
    return window, params["stride"] or max(1, window // 2)


def _occlusion_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    height, width = input_size
    window, stride = occlusion_window(params, height, width)
    return max(1, (height - window) // stride + 1) * max(1, (width - window) // stride + 1) + 1


def _segments_cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return int(params["n_segments"]) + 1


# -------------------------------------------------------------------------------- runners
def _run_saliency(job: Job) -> Output:
    return Output(captum_attr().Saliency(job.module).attribute(job.inputs, target=job.targets, abs=True))


def _run_input_x_gradient(job: Job) -> Output:
    return Output(captum_attr().InputXGradient(job.module).attribute(job.inputs, target=job.targets))


def _run_integrated_gradients(job: Job) -> Output:
    p = job.params
    attributions, delta = captum_attr().IntegratedGradients(job.module).attribute(
        job.inputs,
        baselines=job.baseline(p["baseline"]),
        target=job.targets,
        n_steps=p["n_steps"],
        method=p["integration"],
        internal_batch_size=job.samples_per_pass,
        return_convergence_delta=True,
    )
    return Output(attributions, {}, delta)


def _run_smoothgrad(job: Job) -> Output:
    p = job.params
    tunnel = captum_attr().NoiseTunnel(captum_attr().Saliency(job.module))
    batch = min(job.per_image, p["n_samples"])
    with job.seeded(p["seed"]):
        attributions = tunnel.attribute(
            job.inputs,
            nt_type="smoothgrad",
            nt_samples=p["n_samples"],
            nt_samples_batch_size=batch,
            stdevs=job.noise_std(p["noise"]),
            target=job.targets,
            abs=True,
        )
    return Output(attributions, {"nt_samples_batch_size": batch})


def _run_gradient_shap(job: Job) -> Output:
    # GradientShap expands every input by n_samples at once; split the samples to bound memory.
    # Its result is the mean over samples, so a size-weighted mean of the chunks is exact.
    p = job.params
    explainer = captum_attr().GradientShap(job.module)
    baselines = job.baseline(p["baseline"], job.inputs[:1])
    total = torch.zeros_like(job.inputs)
    batch = min(job.per_image, p["n_samples"])
    with job.seeded(p["seed"]):
        for start in range(0, p["n_samples"], batch):
            count = min(batch, p["n_samples"] - start)
            part = explainer.attribute(
                job.inputs, baselines=baselines, n_samples=count, stdevs=job.noise_std(p["noise"]), target=job.targets
            )
            total += part * count
    return Output(total / p["n_samples"], {"n_samples_per_pass": batch})


def _run_deeplift(job: Job) -> Output:
    baselines = job.baseline(job.params["baseline"])
    return Output(captum_attr().DeepLift(job.module).attribute(job.inputs, baselines=baselines, target=job.targets))


def _run_guided_backprop(job: Job) -> Output:
    return Output(captum_attr().GuidedBackprop(job.module).attribute(job.inputs, target=job.targets))


def _run_occlusion(job: Job) -> Output:
    p = job.params
    channels, height, width = job.inputs.shape[1:]
    window, stride = occlusion_window(p, height, width)
    if window > min(height, width):
        raise InputError(f"occlusion window={window} is larger than the {height}×{width} input; use a smaller one.")
    attributions = captum_attr().Occlusion(job.module).attribute(
        job.inputs,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=job.baseline(p["baseline"]),
        target=job.targets,
        perturbations_per_eval=job.per_image,
    )
    return Output(attributions, {"window": window, "stride": stride, "perturbations_per_eval": job.per_image})


def _run_feature_ablation(job: Job) -> Output:
    p = job.params
    mask = segments(job)
    attributions = captum_attr().FeatureAblation(job.module).attribute(
        job.inputs,
        baselines=job.baseline(p["baseline"]),
        target=job.targets,
        feature_mask=mask,
        perturbations_per_eval=job.per_image,
    )
    return Output(attributions, {"segments_found": int(mask.max()) + 1, "perturbations_per_eval": job.per_image})


def segments(job: Job) -> torch.Tensor:
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

    pixels = job.pixels().float().cpu().permute(0, 2, 3, 1).numpy()
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


# --------------------------------------------------------------------------- declarations
def _samples(default: int) -> Param:
    return Param("n_samples", int, default, low=1, slider=(4, 64, 4), help="noisy copies averaged per image")


register_method(MethodSpec(
    name="saliency", title="Saliency", kind="gradient", signed=False,
    description="|∂ score / ∂ pixel|: how strongly a tiny change of each pixel moves the class score "
                "(Simonyan et al. 2014).",
    runner=_run_saliency,
))
register_method(MethodSpec(
    name="input_x_gradient", title="Input × Gradient", kind="gradient", signed=True,
    description="Input times gradient: a first-order estimate of each pixel's contribution.",
    runner=_run_input_x_gradient,
))
register_method(MethodSpec(
    name="integrated_gradients", title="Integrated Gradients", kind="gradient", signed=True,
    description="Gradients averaged along a straight path from a baseline image to the input, times "
                "(input − baseline); the attributions add up to the score difference (Sundararajan et al. 2017).",
    params=(
        Param("n_steps", int, 50, low=1, slider=(8, 128, 8), help="points on the path from baseline to input"),
        Param("integration", str, "gausslegendre", choices=INTEGRATIONS, help="integration rule along the path"),
        BASELINE,
    ),
    cost=_steps_cost,
    runner=_run_integrated_gradients,
    smoke_params={"n_steps": 4},
))
register_method(MethodSpec(
    name="smoothgrad", title="SmoothGrad", kind="gradient", signed=False,
    description="Saliency averaged over noisy copies of the input, which removes gradient speckle "
                "(Smilkov et al. 2017). noise is the standard deviation in pixel units (0–1 range).",
    params=(
        _samples(25),
        Param("noise", float, 0.15, low=0.0, slider=(0.0, 0.5, 0.05), help="noise standard deviation in pixel units"),
        SEED,
    ),
    cost=_samples_cost,
    runner=_run_smoothgrad,
    smoke_params={"n_samples": 2},
))
register_method(MethodSpec(
    name="gradient_shap", title="GradientSHAP", kind="gradient", signed=True,
    description="Gradients at random points between noisy inputs and a baseline, times (input − baseline); "
                "approximates SHAP values (Lundberg & Lee 2017).",
    params=(
        _samples(20),
        Param("noise", float, 0.1, low=0.0, slider=(0.0, 0.5, 0.05), help="noise standard deviation in pixel units"),
        SEED,
        Param("baseline", str, "zero", choices=("zero", "black", "white"),
              help="gradient_shap draws baselines from one shared distribution, so a per-image blur is not offered"),
    ),
    cost=_samples_cost,
    runner=_run_gradient_shap,
    smoke_params={"n_samples": 2},
))
register_method(MethodSpec(
    name="deeplift", title="DeepLIFT", kind="gradient", signed=True,
    description="Differences from a baseline propagated with the rescale rule through every nonlinearity "
                "(Shrikumar et al. 2017).",
    params=(BASELINE,),
    runner=_run_deeplift,
    private_copy=True,
))
register_method(MethodSpec(
    name="guided_backprop", title="Guided Backprop", kind="gradient", signed=True,
    description="Gradients with negative values stopped at every activation (Springenberg et al. 2015); "
                "sharp, but largely independent of the model's weights (Adebayo et al. 2018).",
    runner=_run_guided_backprop,
    private_copy=True,
))
register_method(MethodSpec(
    name="occlusion", title="Occlusion", kind="perturbation", signed=True,
    description="Drop of the class score when a sliding square patch is replaced by the baseline "
                "(Zeiler & Fergus 2014). window/stride in pixels; default window = input/7, stride = window/2.",
    params=(
        Param("window", int, None, low=1, optional=True, slider=(4, 112, 4),
              help="side of the square patch in pixels (None: 1/7 of the shorter side)"),
        Param("stride", int, None, low=1, optional=True, slider=(2, 112, 2),
              help="step between patches in pixels (None: half the window)"),
        BASELINE,
    ),
    cost=_occlusion_cost,
    runner=_run_occlusion,
    smoke_params={"window": 32, "stride": 32},  # four windows on a 64-pixel input
))
register_method(MethodSpec(
    name="feature_ablation", title="Feature ablation", kind="perturbation", signed=True,
    description="Drop of the class score when each superpixel (SLIC) or grid patch is replaced by the baseline.",
    params=(
        Param("segmentation", str, "slic", choices=("slic", "grid"), help="SLIC superpixels or square grid patches"),
        Param("n_segments", int, 50, low=1, slider=(10, 200, 10), help="how many segments to ablate one by one"),
        Param("compactness", float, 10.0, low=0.0, slider=(0.1, 50.0, 0.1),
              help="SLIC: higher gives squarer superpixels"),
        BASELINE,
    ),
    cost=_segments_cost,
    runner=_run_feature_ablation,
    smoke_params={"segmentation": "grid", "n_segments": 4},
))
