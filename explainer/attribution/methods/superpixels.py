"""LIME and KernelSHAP over superpixels, computed by Captum (``captum.attr.Lime`` / ``KernelShap``).

The interpretable features are the superpixels of each image – scikit-image SLIC or a regular
grid (``segmentation=``), made by the same :func:`explainer.attribution.methods.captum.segments` as
``feature_ablation`` – and the returned :class:`Explanation` carries them in ``segments`` so a
figure can draw their outlines. A switched-off superpixel takes the value of ``baseline``.

Captum draws its perturbations from torch's global generator; each image runs on its own inside
:func:`explainer.rng.isolated_rng` seeded with ``seed``, so an image's result does not
depend on the other images of the batch and the caller's random state is left as it was.
Captum's defaults are kept: LIME fits ``SkLearnLasso(alpha=0.01)`` with an exponential kernel
(width 1) on the cosine distance of the interpretable vectors (Ribeiro et al. 2016); KernelSHAP
fits a linear model to coalitions drawn from the Shapley kernel (Lundberg & Lee 2017). The
explained quantity is the target's logit. Up to ``job.samples_per_pass`` perturbed images go
through the model per pass (Captum's ``perturbations_per_eval``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from explainer.attribution.methods.captum import captum_attr, segments
from explainer.attribution.registry import Job, MethodSpec, Output, Param, register_method
from explainer.baselines import BASELINES
from explainer.errors import InputError
from explainer.rng import isolated_rng


def _run_surrogate(job: Job, captum_class: str) -> Output:
    p = job.params
    mask = segments(job)
    found = [int(m.unique().numel()) for m in mask]
    if min(found) < 2:
        raise InputError(
            f"{captum_class} needs at least 2 superpixels per image; image {found.index(min(found))} has "
            f"{min(found)} ({job.params['segmentation']}, n_segments={job.params['n_segments']}). Raise n_segments, "
            "lower compactness, or use segmentation='grid'."
        )
    reference = job.baseline(p["baseline"])
    explainer = getattr(captum_attr(), captum_class)(job.module)
    maps = []
    for i, target in enumerate(job.targets):
        with isolated_rng(p["seed"]):
            maps.append(explainer.attribute(
                job.inputs[i : i + 1], baselines=reference[i : i + 1], target=target, feature_mask=mask[i : i + 1],
                n_samples=p["n_samples"], perturbations_per_eval=job.samples_per_pass,
            ))
    return Output(torch.cat(maps), {"segments_found": int(mask.max()) + 1,
                                    "perturbations_per_eval": job.samples_per_pass}, segments=mask)


def run_lime(job: Job) -> Output:
    """LIME (Captum's ``Lime``) over the superpixels of each image."""
    return _run_surrogate(job, "Lime")


def run_kernel_shap(job: Job) -> Output:
    """KernelSHAP (Captum's ``KernelShap``) over the superpixels of each image."""
    return _run_surrogate(job, "KernelShap")


def _cost(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    return int(params["n_samples"])


def _params(samples: int) -> tuple[Param, ...]:
    return (
        Param("n_samples", int, samples, low=2, high=100_000, slider=(25, 2000, 25),
              help="perturbed images the surrogate model is fitted to"),
        Param("segmentation", str, "slic", choices=("slic", "grid"), help="SLIC superpixels or square grid patches"),
        Param("n_segments", int, 50, low=1, slider=(10, 200, 10), help="how many superpixels (approximately, SLIC)"),
        Param("compactness", float, 10.0, low=0.0, slider=(0.1, 50.0, 0.1), help="SLIC: higher gives squarer superpixels"),
        Param("baseline", str, "zero", choices=BASELINES, help="what a switched-off superpixel becomes"),
        Param("seed", int, 0, help="seed of the perturbations"),
    )


#: A quick run: few samples over four grid patches.
_SMOKE = {"n_samples": 8, "segmentation": "grid", "n_segments": 4}

register_method(MethodSpec(
    name="lime", title="LIME", kind="perturbation", signed=True,
    description="A sparse linear model fitted to the class score of randomly switched-off superpixels; its "
                "weights are the attributions (Ribeiro et al. 2016, via Captum).",
    params=_params(200), cost=_cost, runner=run_lime, smoke_params=_SMOKE,
))
register_method(MethodSpec(
    name="kernel_shap", title="KernelSHAP", kind="perturbation", signed=True,
    description="Shapley values of the superpixels, estimated by a linear model over coalitions weighted with the "
                "Shapley kernel (Lundberg & Lee 2017, via Captum).",
    params=_params(200), cost=_cost, runner=run_kernel_shap, smoke_params=_SMOKE,
))
