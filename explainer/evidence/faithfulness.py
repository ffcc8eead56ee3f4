"""Evidence that an attribution map is faithful to the model.

* Deletion and insertion curves: perturb pixels in the order the map ranks them and watch the
  target-class probability, against random orders as a reference.
* Cascading model randomization (Adebayo et al. 2018): re-initialize the network from the output
  down and check that the map changes with it.
* Agreement between methods and the share of attribution mass inside a known ground-truth mask.

One protocol for every method and image: the relevance of a pixel is the explanation's absolute
heatmap, ``|attribution|`` summed over channels (``explanation.heatmap(absolute=True)``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from explainer.errors import InputError
from explainer.explain.attribution import Explanation, explain
from explainer.models import Classifier, ImageBatch

BASELINES = ("zeros", "blur")
#: Rank correlation below which a map counts as changed by full model randomization.
RANDOMIZATION_THRESHOLD = 0.5
#: Largest difference (in normalized input units) tolerated between the given images and the explained ones.
_INPUT_TOLERANCE = 1e-3


@dataclass
class RandomizationStep:
    """One step of the randomization cascade: which layers were re-initialized, and how the map moved."""

    name: str  # the lowest unit re-initialized so far, or "all"
    layers: list[str]  # every unit re-initialized so far, output first
    correlations: np.ndarray  # (N,) Spearman of |heatmap| with the original, foreground pixels; NaN: map constant

    @property
    def mean(self) -> float:
        return float(np.nanmean(self.correlations)) if np.isfinite(self.correlations).any() else float("nan")


@dataclass
class FaithfulnessReport:
    """Deletion/insertion curves, AUCs, randomization cascade and verdicts for one explanation.

    Curves hold the target-class softmax probability at each fraction of pixels perturbed.
    Insertion with the same baseline is LeRF deletion read backwards (the image with the most
    relevant fraction ``f`` inserted *is* the image with the least relevant ``1 - f`` deleted), so
    ``insertion`` and ``random_insertion`` are derived from ``lerf`` and ``random_deletion`` and
    their AUCs equal the deletion ones; both names are kept because both readings are common.
    """

    method: str
    model_name: str
    targets: list[int]
    labels: list[str]
    fractions: np.ndarray  # (S + 1,) fraction of pixels deleted / inserted
    morf: np.ndarray  # (N, S + 1) most relevant deleted first
    lerf: np.ndarray  # (N, S + 1) least relevant deleted first
    random_deletion: np.ndarray  # (seeds, N, S + 1) random orders
    randomization: list[RandomizationStep]
    protocol: dict[str, Any]
    seconds: float
    device: str

    # ------------------------------------------------------------------- curves
    @property
    def insertion(self) -> np.ndarray:
        """(N, S + 1) most relevant pixels inserted first into the baseline (= ``lerf`` reversed)."""
        return self.lerf[:, ::-1].copy()

    @property
    def random_insertion(self) -> np.ndarray:
        """(seeds, N, S + 1) random orders inserted into the baseline (= random deletion reversed)."""
        return self.random_deletion[..., ::-1].copy()

    def random_band(self, kind: str = "deletion") -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over random orders, each ``(N, S + 1)``; kind is deletion or insertion."""
        curves = {"deletion": self.random_deletion, "insertion": self.random_insertion}.get(kind)
        if curves is None:
            raise InputError(f"kind must be 'deletion' or 'insertion', got {kind!r}.")
        return curves.mean(axis=0), curves.std(axis=0)

    # --------------------------------------------------------------------- AUCs
    @property
    def aucs(self) -> dict[str, np.ndarray]:
        """Area under each curve per image, ``(N,)``; random AUCs are averaged over orders."""
        return {
            "deletion": area_under_curve(self.fractions, self.morf),
            "lerf_deletion": area_under_curve(self.fractions, self.lerf),
            "random_deletion": area_under_curve(self.fractions, self.random_deletion).mean(axis=0),
            "insertion": area_under_curve(self.fractions, self.insertion),
            "random_insertion": area_under_curve(self.fractions, self.random_insertion).mean(axis=0),
        }

    @property
    def mean_aucs(self) -> dict[str, float]:
        return {name: float(values.mean()) for name, values in self.aucs.items()}

    @property
    def randomization_correlation(self) -> np.ndarray | None:
        """Per-image rank correlation after the last (full) randomization step, or None if not run."""
        return self.randomization[-1].correlations if self.randomization else None

    @property
    def verdicts(self) -> list[dict[str, bool]]:
        """Per image: did the map pass each check?

        ``morf_below_lerf`` – deleting the most relevant pixels first hurts more than deleting the least
        relevant first; ``insertion_above_random`` – inserting by relevance beats random insertion;
        ``deletion_below_random`` – MoRF deletion beats random deletion (scattered random deletion is
        itself destructive, so good compact maps can fail this one); ``changes_when_randomized`` – rank
        correlation after full randomization below ``RANDOMIZATION_THRESHOLD``, or undefined because the
        randomized map became constant (only when randomization ran).
        """
        aucs = self.aucs
        final = self.randomization_correlation
        verdicts = []
        for i in range(len(self.targets)):
            verdict = {
                "morf_below_lerf": bool(aucs["deletion"][i] < aucs["lerf_deletion"][i]),
                "insertion_above_random": bool(aucs["insertion"][i] > aucs["random_insertion"][i]),
                "deletion_below_random": bool(aucs["deletion"][i] < aucs["random_deletion"][i]),
            }
            if final is not None:
                verdict["changes_when_randomized"] = not bool(final[i] >= RANDOMIZATION_THRESHOLD)
            verdicts.append(verdict)
        return verdicts

    # ------------------------------------------------------------------- output
    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready lists, floats and strings."""
        random_del_mean, random_del_std = self.random_band("deletion")
        random_ins_mean, random_ins_std = self.random_band("insertion")
        return {
            "method": self.method,
            "model_name": self.model_name,
            "targets": list(self.targets),
            "labels": list(self.labels),
            "protocol": dict(self.protocol),
            "seconds": self.seconds,
            "device": self.device,
            "fractions": self.fractions.tolist(),
            "curves": {
                "morf_deletion": self.morf.tolist(),
                "lerf_deletion": self.lerf.tolist(),
                "insertion": self.insertion.tolist(),
                "random_deletion_mean": random_del_mean.tolist(),
                "random_deletion_std": random_del_std.tolist(),
                "random_insertion_mean": random_ins_mean.tolist(),
                "random_insertion_std": random_ins_std.tolist(),
            },
            "aucs": {name: values.tolist() for name, values in self.aucs.items()},
            "mean_aucs": self.mean_aucs,
            "verdicts": self.verdicts,
            "randomization": [
                {
                    "name": step.name,
                    "layers": step.layers,
                    "correlations": step.correlations.tolist(),
                    "mean": step.mean,
                }
                for step in self.randomization
            ],
        }

    def summary(self) -> str:
        """A few plain sentences: what was measured and where the map passed or failed."""
        n = len(self.targets)
        means, verdicts = self.mean_aucs, self.verdicts

        def tally(key: str) -> str:
            failed = [f"{i} ({self.labels[i]})" for i, v in enumerate(verdicts) if not v[key]]
            text = f"{n - len(failed)}/{n} images"
            return text + (f"; fails on image {', '.join(failed)}" if failed else "")

        p = self.protocol
        lines = [
            f"{self.method} on {self.model_name}: {n} image(s), {p['baseline']} baseline, {p['steps']} steps, "
            f"{p['random_seeds']} random orders ({self.seconds:.1f} s on {self.device}).",
            f"Deleting the most relevant pixels first lowers the target probability faster than deleting the "
            f"least relevant first on {tally('morf_below_lerf')} (mean AUC {means['deletion']:.3g} vs "
            f"{means['lerf_deletion']:.3g}; lower is better for MoRF).",
            f"Inserting the most relevant pixels first beats random insertion on {tally('insertion_above_random')} "
            f"(mean AUC {means['insertion']:.3g} vs {means['random_insertion']:.3g}; insertion is LeRF deletion "
            "read backwards).",
            f"MoRF deletion beats random deletion on {tally('deletion_below_random')} (mean AUC "
            f"{means['deletion']:.3g} vs {means['random_deletion']:.3g}; scattered random deletion is itself "
            "destructive, so compact maps can lose here).",
        ]
        if self.randomization:
            final = self.randomization[-1]
            constant = int(np.isnan(final.correlations).sum())
            note = f", {constant} randomized map(s) became constant" if constant else ""
            lines.append(
                f"Model randomization: after re-initializing all layers the map's rank correlation with the "
                f"original is {final.mean:.2f} on average{note}; the map changes (correlation < "
                f"{RANDOMIZATION_THRESHOLD}) on {tally('changes_when_randomized')}."
            )
        return "\n".join(lines)


@dataclass
class MaskShare:
    """Share of absolute attribution mass inside a ground-truth mask, with the mask's area share as reference."""

    method: str
    share: np.ndarray  # (N,) attribution mass inside the mask / total mass
    area_share: np.ndarray  # (N,) mask pixels / all pixels (what a uniform map would score)

    @property
    def mean_share(self) -> float:
        """Mean over images whose map is not empty (NaN when every map is empty)."""
        return float(np.nanmean(self.share)) if np.isfinite(self.share).any() else float("nan")

    @property
    def mean_area_share(self) -> float:
        return float(self.area_share.mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "share": self.share.tolist(),
            "area_share": self.area_share.tolist(),
            "mean_share": self.mean_share,
            "mean_area_share": self.mean_area_share,
        }


# ------------------------------------------------------------------------ metrics
def area_under_curve(fractions: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Trapezoid area under ``curves`` (``(..., S + 1)``) over ``fractions`` in [0, 1]."""
    return np.trapezoid(np.asarray(curves, dtype=np.float64), np.asarray(fractions, dtype=np.float64), axis=-1)


def foreground_mask(pixels: torch.Tensor, tolerance: float = 1e-6, border_share: float = 0.5) -> torch.Tensor:
    """Bool ``(N, H, W)``: pixels that differ from the image's constant background colour.

    The background colour is the colour of at least ``border_share`` of the image's border pixels (the
    zero surround of a digit, a flat fill); images without one (photos, noisy images) keep every pixel.
    Background carries no image evidence, yet two unrelated maps agree there (both zero for
    input-times-gradient methods), which inflates their rank correlation.
    """
    if pixels.ndim != 4:
        raise InputError(f"pixels must be (N, C, H, W); got shape {tuple(pixels.shape)}.")
    pixels = pixels.detach().float().cpu()
    border = torch.cat(
        [pixels[:, :, 0, :], pixels[:, :, -1, :], pixels[:, :, 1:-1, 0], pixels[:, :, 1:-1, -1]], dim=2
    ).transpose(1, 2)  # (N, border pixels, C)
    masks = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.bool)
    for i, colours in enumerate(border):
        values, counts = torch.unique(colours, dim=0, return_counts=True)
        if counts.max() < border_share * colours.shape[0]:
            continue
        background = values[counts.argmax()].view(-1, 1, 1)
        mask = (pixels[i] - background).abs().amax(dim=0) > tolerance
        if mask.any():
            masks[i] = mask
    return masks


def rank_correlation(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Spearman rank correlation of two maps (ties get average ranks), over ``mask`` when given.

    Returns NaN when either map is constant over the pixels compared.
    """
    a, b = a.detach().flatten().double().cpu(), b.detach().flatten().double().cpu()
    if a.shape != b.shape:
        raise InputError(f"Maps to correlate differ in size: {a.numel()} vs {b.numel()} values.")
    if mask is not None:
        keep = mask.detach().flatten().bool().cpu()
        a, b = a[keep], b[keep]
    if a.numel() < 2:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denominator if denominator > 0 else float("nan")


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    ordered, order = values.sort(stable=True)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    average = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(values)
    ranks[order] = average[inverse]
    return ranks


def method_agreement(explanations: Sequence[Explanation]) -> tuple[list[str], np.ndarray]:
    """Spearman correlation between the absolute heatmaps of several explanations of the same images.

    Returns the method names and a symmetric ``(M, M)`` float32 matrix, averaged over images, computed
    over foreground pixels (see :func:`foreground_mask`).
    """
    explanations = list(explanations)
    if len(explanations) < 2:
        raise InputError(f"method_agreement needs at least two explanations, got {len(explanations)}.")
    first = explanations[0]
    for other in explanations[1:]:
        if other.attributions.shape[0] != first.attributions.shape[0] or other.heatmap().shape != first.heatmap().shape:
            raise InputError(
                f"Explanations cover different images: {first.method} has maps {tuple(first.heatmap().shape)}, "
                f"{other.method} has {tuple(other.heatmap().shape)}. Explain the same images with each method."
            )
    names = _unique_names([e.method for e in explanations])
    maps = [e.heatmap(absolute=True) for e in explanations]
    masks = foreground_mask(first.pixels)
    size = len(explanations)
    matrix = np.eye(size, dtype=np.float32)
    for i in range(size):
        for j in range(i + 1, size):
            values = [rank_correlation(maps[i][k], maps[j][k], masks[k]) for k in range(masks.shape[0])]
            matrix[i, j] = matrix[j, i] = np.nanmean(values) if np.isfinite(values).any() else np.nan
    return names, matrix


def _unique_names(names: list[str]) -> list[str]:
    return [name if names.count(name) == 1 else f"{name} ({names[:i].count(name) + 1})" for i, name in enumerate(names)]


def mask_share(explanation: Explanation, masks: torch.Tensor) -> MaskShare:
    """Share of absolute attribution mass inside ``masks`` (bool ``(N, 1, H, W)`` or ``(N, H, W)``).

    ``area_share`` – the mask's share of all pixels – is what a map spreading its mass evenly scores.
    """
    heat = explanation.heatmap(absolute=True).double()
    masks = torch.as_tensor(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or tuple(masks.shape) != tuple(heat.shape):
        raise InputError(
            f"masks must match the explanation: expected shape {(heat.shape[0], 1, *heat.shape[1:])} or "
            f"{tuple(heat.shape)}, got {tuple(masks.shape)}. Use a classifier whose input_size equals the image size."
        )
    masks = masks.bool().cpu()
    total = heat.flatten(1).sum(dim=1)
    inside = (heat * masks).flatten(1).sum(dim=1)
    share = torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))
    area = masks.flatten(1).double().mean(dim=1)
    return MaskShare(explanation.method, share.numpy(), area.numpy())


# ------------------------------------------------------------------ main entry
def check_faithfulness(
    classifier: Classifier,
    images: ImageBatch,
    explanation: Explanation,
    *,
    steps: int = 25,
    random_seeds: int = 3,
    baseline: str = "zeros",
    randomization: bool = True,
    randomization_steps: int = 4,
    batch_size: int = 32,
    seed: int = 0,
) -> FaithfulnessReport:
    """Measure how faithful ``explanation`` is to ``classifier`` on ``images``.

    Protocol (the same for every method and image):

    * relevance of a pixel = ``|attribution|`` summed over channels; ties are broken in a fixed random order;
    * at each of ``steps + 1`` fractions ``0, 1/steps, ..., 1`` that share of pixels (all channels) is set
      to the baseline – ``"zeros"`` in the normalized input space (the dataset mean colour) or ``"blur"``
      (a Gaussian blur of the image, sigma = 1/20 of its shorter side);
    * the curve is the softmax probability of the explained target class; AUC by the trapezoid rule;
    * orders: most relevant first (MoRF), least relevant first (LeRF), ``random_seeds`` random orders.
      Insertion (baseline first, most relevant inserted first) is LeRF read backwards and is reported
      under its own name too.

    With ``randomization``, a deep copy of the model is re-initialized from the output down in
    ``randomization_steps`` cumulative steps over its top-level blocks; the same method, parameters and
    targets are explained on each copy, and the Spearman correlation of the absolute maps with the
    original is measured over pixels that differ from a constant background colour (see
    :func:`foreground_mask`). The caller's model is never modified.
    """
    started = time.perf_counter()
    _check_options(explanation, steps, random_seeds, baseline, randomization_steps, batch_size)
    inputs = _matching_inputs(classifier, images, explanation)
    device = inputs.device
    relevance = explanation.heatmap(absolute=True)
    targets = [int(t) for t in explanation.targets]

    reference = _baseline(inputs, baseline)
    num_pixels = relevance[0].numel()
    counts = torch.tensor([round(k * num_pixels / steps) for k in range(steps + 1)], device=device)
    generator = torch.Generator().manual_seed(seed)
    morf, lerf, random = [], [], []
    for i in range(inputs.shape[0]):
        ranks = _perturbation_ranks(relevance[i].flatten(), random_seeds, generator).to(device)
        probabilities = _curve_probabilities(
            classifier.module, inputs[i], reference[i], ranks, counts, targets[i], batch_size
        )
        morf.append(probabilities[0])
        lerf.append(probabilities[1])
        random.append(probabilities[2:])

    cascade = _randomization_cascade(classifier, explanation, randomization_steps, seed) if randomization else []
    protocol = {
        "relevance": "|attribution| summed over channels",
        "baseline": baseline,
        "steps": steps,
        "random_seeds": random_seeds,
        "seed": seed,
        "score": "softmax probability of the target class",
        "insertion": "LeRF deletion read backwards (same baseline)",
        "randomization_steps": len(cascade),
        "randomization_correlation": "Spearman of |heatmap|, constant background masked out",
    }
    return FaithfulnessReport(
        method=explanation.method,
        model_name=classifier.name,
        targets=targets,
        labels=[classifier.labels[t] for t in targets],
        fractions=(counts.double() / num_pixels).cpu().numpy().astype(np.float32),
        morf=torch.stack(morf).cpu().numpy(),
        lerf=torch.stack(lerf).cpu().numpy(),
        random_deletion=torch.stack(random, dim=1).cpu().numpy(),
        randomization=cascade,
        protocol=protocol,
        seconds=time.perf_counter() - started,
        device=str(device),
    )


def _check_options(
    explanation: Explanation, steps: int, random_seeds: int, baseline: str, randomization_steps: int, batch_size: int
) -> None:
    if not isinstance(explanation, Explanation):
        raise InputError(
            f"explanation must be an Explanation from explainer.explain(...), got {type(explanation).__name__}."
        )
    if not isinstance(steps, int) or steps < 2:
        raise InputError(f"steps must be an integer of at least 2 (a curve needs 3 points), got {steps!r}.")
    if not isinstance(random_seeds, int) or random_seeds < 1:
        raise InputError(f"random_seeds must be a positive integer (random orders as reference), got {random_seeds!r}.")
    if baseline not in BASELINES:
        raise InputError(f"Unknown baseline {baseline!r}; choose one of: {', '.join(BASELINES)}.")
    if not isinstance(randomization_steps, int) or randomization_steps < 1:
        raise InputError(f"randomization_steps must be a positive integer, got {randomization_steps!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")


def _matching_inputs(classifier: Classifier, images: ImageBatch, explanation: Explanation) -> torch.Tensor:
    """The images as model inputs, after checking they are the ones the explanation was made for."""
    if explanation.model_name != classifier.name:
        raise InputError(
            f"The explanation was computed with model {explanation.model_name!r} but the classifier is "
            f"{classifier.name!r}; check faithfulness with the model that was explained."
        )
    inputs = classifier.preprocess(images)
    expected = explanation.inputs
    if inputs.shape[0] != expected.shape[0]:
        raise InputError(
            f"The explanation covers {expected.shape[0]} image(s) but {inputs.shape[0]} image(s) were given; "
            "pass the same images you explained."
        )
    if inputs.shape != expected.shape or tuple(explanation.attributions.shape[-2:]) != tuple(inputs.shape[-2:]):
        raise InputError(
            f"The images give inputs of shape {tuple(inputs.shape)} but the explanation has inputs "
            f"{tuple(expected.shape)} and attributions {tuple(explanation.attributions.shape)}."
        )
    difference = float((inputs.cpu() - expected.float()).abs().max())
    if difference > _INPUT_TOLERANCE:
        raise InputError(
            f"The images differ from the ones the explanation was computed for (largest input difference "
            f"{difference:.3g}); pass the same images in the same order."
        )
    return inputs


def _baseline(inputs: torch.Tensor, kind: str) -> torch.Tensor:
    """What a removed pixel becomes, in the normalized input space."""
    if kind == "zeros":
        return torch.zeros_like(inputs)
    from torchvision.transforms.functional import gaussian_blur

    short_side = min(inputs.shape[-2:])
    sigma = max(1.0, short_side / 20)
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * (short_side - 1) + 1 if short_side > 1 else 1)
    return gaussian_blur(inputs, [kernel, kernel], [sigma, sigma])


def _perturbation_ranks(relevance: torch.Tensor, random_seeds: int, generator: torch.Generator) -> torch.Tensor:
    """``(2 + seeds, P)`` position of each pixel in the MoRF, LeRF and random orders (ties in random order)."""
    relevance = relevance.detach().float().cpu()
    size = relevance.numel()
    shuffle = torch.randperm(size, generator=generator)
    shuffled = relevance[shuffle]
    orders = [
        shuffle[torch.argsort(shuffled, descending=True, stable=True)],
        shuffle[torch.argsort(shuffled, descending=False, stable=True)],
    ]
    orders += [torch.randperm(size, generator=generator) for _ in range(random_seeds)]
    ranks = torch.empty(len(orders), size, dtype=torch.long)
    positions = torch.arange(size)
    for row, order in enumerate(orders):
        ranks[row, order] = positions
    return ranks


def _curve_probabilities(
    module: nn.Module,
    image: torch.Tensor,
    reference: torch.Tensor,
    ranks: torch.Tensor,
    counts: torch.Tensor,
    target: int,
    batch_size: int,
) -> torch.Tensor:
    """``(orders, S + 1)`` target probability with the first ``counts[k]`` pixels of each order replaced."""
    num_orders, num_steps = ranks.shape[0], counts.numel()
    jobs = torch.cartesian_prod(torch.arange(num_orders), torch.arange(num_steps)).to(image.device)
    height, width = image.shape[-2:]
    results = []
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            for chunk in jobs.split(batch_size):
                removed = (ranks[chunk[:, 0]] < counts[chunk[:, 1]].unsqueeze(1)).view(-1, 1, height, width)
                batch = torch.where(removed, reference.unsqueeze(0), image.unsqueeze(0))
                results.append(module(batch).float().softmax(dim=1)[:, target])
    finally:
        module.train(was_training)
    return torch.cat(results).view(num_orders, num_steps).cpu()


# ------------------------------------------------------------ randomization cascade
def cascade_units(module: nn.Module) -> list[str]:
    """Top-level blocks of ``module`` that hold parameters, output first.

    Sequential containers at the top (timm ``blocks``, a ViT's transformer blocks) are split into their
    children, so a cascade can stop between stages.
    """
    def has_parameters(part: nn.Module) -> bool:
        return any(True for _ in part.parameters())

    units: list[str] = []
    for name, child in module.named_children():
        if not has_parameters(child):
            continue
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            units += [f"{name}.{sub}" for sub, grandchild in child.named_children() if has_parameters(grandchild)]
        else:
            units.append(name)
    return units[::-1]


def _randomization_cascade(
    classifier: Classifier, explanation: Explanation, num_steps: int, seed: int
) -> list[RandomizationStep]:
    units = cascade_units(classifier.module)
    if not units:
        raise InputError(f"{classifier.name} has no parameters to randomize; pass randomization=False.")
    stops = sorted({round(x) for x in np.linspace(1, len(units), min(num_steps, len(units)))})
    randomized = copy.deepcopy(classifier.module)
    copy_classifier = dataclasses.replace(classifier, module=randomized)
    original = explanation.heatmap(absolute=True)
    masks = foreground_mask(explanation.pixels)
    device = classifier.device
    rng_devices = []
    if device.type == "cuda":
        rng_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    method_params = {key: value for key, value in explanation.params.items() if key in explanation.spec.defaults}
    steps: list[RandomizationStep] = []
    done = 0
    with torch.random.fork_rng(devices=rng_devices):
        torch.manual_seed(seed)
        for stop in stops:
            for name in units[done:stop]:
                _reinitialize(randomized.get_submodule(name))
            if stop == len(units):
                for parameter in randomized.parameters(recurse=False):
                    _redraw(parameter)
            done = stop
            again = explain(
                copy_classifier,
                explanation.pixels,
                method=explanation.method,
                target=list(explanation.targets),
                layer=explanation.layer,
                internal_batch_size=explanation.params.get("internal_batch_size"),
                **method_params,
            )
            heat = again.heatmap(absolute=True)
            correlations = np.array([rank_correlation(original[i], heat[i], masks[i]) for i in range(heat.shape[0])])
            label = "all" if stop == len(units) else units[stop - 1]
            steps.append(RandomizationStep(label, units[:stop], correlations))
    return steps


@torch.no_grad()
def _reinitialize(module: nn.Module) -> None:
    """PyTorch's default initialization for every layer that has one; other parameters ~ N(0, 0.02²)."""
    for sub in module.modules():
        if callable(getattr(sub, "reset_parameters", None)):
            sub.reset_parameters()
        else:
            for parameter in sub.parameters(recurse=False):
                _redraw(parameter)


@torch.no_grad()
def _redraw(parameter: torch.Tensor) -> None:
    nn.init.normal_(parameter, std=0.02)
