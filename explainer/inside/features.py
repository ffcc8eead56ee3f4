"""What one channel responds to: its top-activating images and an input optimized to excite it."""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from explainer.compat import legacy_positional
from explainer.data.datasets import Dataset
from explainer.data.images import sample_images
from explainer.errors import InputError
from explainer.inside.activations import as_maps, capture, check_channel
from explainer.jsonable import JsonResult, headline
from explainer.models.layers import feature_layers
from explainer.rng import seeded_generator
from explainer.run.long_call import Estimate, batches, duration, passes_estimate, start, timed_pass

if TYPE_CHECKING:
    from explainer.inside.feature_check import FeatureCheck
    from explainer.models import Classifier, ImageBatch

#: Lucid's colour decorrelation: square root of the ImageNet colour covariance (its SVD), columns normalized.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_SQRT = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
#: Lucid's standard transforms: pad, jitter, scale, rotate, jitter again (robustness makes patterns, not noise).
_PAD, _JITTER, _JITTER_FINE = 12, 8, 4
_SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
_ANGLES = tuple(range(-10, 11)) + (0,) * 5
#: ``FeatureVisualization.method``: Adam on a decorrelated Fourier image (1/f spectrum, colour
#: decorrelation, sigmoid) through pad / jitter / scale / rotate transforms, as in Lucid.
FEATURE_VISUALIZATION_METHOD = "fourier_adam"
F_ = TypeVar("F_", bound=Callable[..., Any])


@dataclass
class TopActivating(JsonResult):
    """The ``top_k`` images that excite ``channel`` of ``layer`` most, with where (``maps``, upsampled to
    pixels). ``to_dict()`` leaves out the pixels and maps."""

    layer: str
    channel: int
    indices: list[int]  # positions in the searched images, strongest first
    names: list[str]
    scores: np.ndarray  # (k,) channel score of each shown image
    pixels: torch.Tensor  # (k, C, H, W) in [0, 1]
    maps: torch.Tensor  # (k, H, W) channel activation, bilinearly upsampled to the image size
    all_scores: np.ndarray  # (N,) score of every searched image
    score: str  # "max" or "mean" over the channel's positions
    seconds: float
    device: str
    model_name: str = ""

    _not_in_dict = ("pixels", "maps")

    @headline
    def method(self) -> str:
        """How images are scored: ``"max"`` or ``"mean"`` of the channel over positions (= :attr:`score`)."""
        return self.score

    def summary(self) -> pd.DataFrame:
        """The headline numbers, one row per shown image (strongest first): index, name, score."""
        return pd.DataFrame({"rank": range(1, len(self.indices) + 1), "index": self.indices, "name": self.names,
                             "score": self.scores})


def _as_items(images: ImageBatch | Dataset | Mapping) -> tuple[Any, list[str]]:
    """An indexable batch of images and their names."""
    if isinstance(images, Dataset):
        if not images.is_image:
            raise InputError(f"Dataset {images.name!r} holds 2-D points, not images; use an image dataset.")
        names = [f"{images.name} test #{i} ({images.class_names[int(y)]})" for i, y in enumerate(images.y_test)]
        return images.x_test, names
    if isinstance(images, Mapping):
        return list(images.values()), [str(name) for name in images]
    if isinstance(images, torch.Tensor):
        batch = images if images.ndim == 4 else images.unsqueeze(0)
        return batch, [f"image {i}" for i in range(len(batch))]
    if isinstance(images, (list, tuple)):
        return list(images), [f"image {i}" for i in range(len(images))]
    return [images], ["image 0"]


def _channel_maps(classifier: Classifier, layer: str, channel: int, pixels: torch.Tensor) -> torch.Tensor:
    """``(N, h, w)`` activation of one channel for a batch of pixels."""
    output = capture(classifier, classifier.normalize(pixels).to(classifier.device), [layer])[layer]
    maps = as_maps(classifier, layer, output.float())
    check_channel(maps.shape[1], channel, layer)
    return maps[:, channel]


def _accept_old_order(function: F_) -> F_:
    """Calls in the old order ``top_activating(classifier, layer, channel, images, k)`` still work for
    one release, with a DeprecationWarning."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) >= 4:
            classifier, layer, channel, images, *rest = args
            kwargs.update(layer=layer, channel=channel)
            if rest:
                kwargs["top_k"] = rest[0]
            args = (classifier, images)
            warnings.warn("top_activating(classifier, layer, channel, images, k) is now top_activating(classifier, "
                          "images, layer=..., channel=..., top_k=...); the old order goes away in 0.5.",
                          DeprecationWarning, stacklevel=2)
        if "k" in kwargs:
            kwargs["top_k"] = kwargs.pop("k")
            warnings.warn("top_activating(k=...) is now top_k=...; the old name goes away in 0.5.",
                          DeprecationWarning, stacklevel=2)
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@_accept_old_order
def top_activating(
    classifier: Classifier,
    images: ImageBatch | Dataset | Mapping,
    *,
    layer: str,
    channel: int,
    top_k: int = 9,
    score: str = "max",
    batch_size: int = 32,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> TopActivating:
    """Search ``images`` (a batch, a list, a name → image dict, or a Dataset's test split) for the ``top_k``
    that excite ``channel`` of ``layer`` most (``score`` = the channel's max or mean over positions).

    ``progress``: the estimate (a forward to the layer per image, timed on two passes of the first image), then a
    bar over the images on stderr; False is silent. ``budget_seconds``: refuse (InputError with what to shrink)
    a call estimated above it; None is no limit."""
    started = time.perf_counter()
    if score not in ("max", "mean"):
        raise InputError(f"score must be 'max' or 'mean', got {score!r}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k!r}.")
    classifier.get_layer(layer)
    items, names = _as_items(images)
    count = len(names)
    shown = min(top_k, count)

    def estimate() -> Estimate:
        one = classifier.to_pixels(items[:1])
        with torch.inference_mode():
            timing = timed_pass(lambda n: _channel_maps(classifier, layer, channel, one.expand(n, *one.shape[1:])),
                                min(batch_size, count))
        return passes_estimate(timing, [*batches(count, batch_size), shown], f"forward (to {layer})", classifier.device,
                               detail=f"{count} image(s) searched + the top {shown} again for their maps")

    bar = start("top_activating", estimate, progress=progress, budget_seconds=budget_seconds, total=count + shown,
                unit="image", passes=count + shown, shrink=f"fewer images ({count} now) or an earlier layer")
    scores: list[torch.Tensor] = []
    with bar, torch.inference_mode():
        for first in range(0, count, batch_size):
            maps = _channel_maps(classifier, layer, channel, classifier.to_pixels(items[first : first + batch_size]))
            scores.append((maps.flatten(1).amax(1) if score == "max" else maps.flatten(1).mean(1)).cpu())
            bar.update(len(maps))
        all_scores = torch.cat(scores).numpy()
        order = np.argsort(-all_scores, kind="stable")[:top_k].tolist()
        pixels = classifier.to_pixels(
            items[order] if isinstance(items, torch.Tensor) else [items[i] for i in order]
        )
        maps = _channel_maps(classifier, layer, channel, pixels)
        bar.update(len(order))
        upsampled = F.interpolate(maps[:, None], size=pixels.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return TopActivating(
        layer=layer,
        channel=int(channel),
        indices=order,
        names=[names[i] for i in order],
        scores=all_scores[order],
        pixels=pixels,
        maps=upsampled.float().cpu(),
        all_scores=all_scores,
        score=score,
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
        model_name=classifier.name,
    )


@dataclass
class FeatureVisualization(JsonResult):
    """An input optimized to excite one channel, and how strongly it does compared with ordinary inputs.

    Activations are the channel's mean over positions for the untransformed image at ``size``;
    ``photo_activation`` is the mean over the reference photos, ``noise_activation`` over uniform noise.
    """

    layer: str
    channel: int
    image: torch.Tensor  # (C, size, size) pixels in [0, 1]
    activation: float
    noise_activation: float
    photo_activation: float
    photo_max: float  # the strongest reference photo
    history: np.ndarray = field(repr=False)  # objective (channel mean, transformed image) per step
    objective_site: str = ""  # where the objective was read: the layer, or the input of its final rectifier
    steps: int = 0
    size: int = 0
    lr: float = 0.0
    seed: int = 0
    method: str = FEATURE_VISUALIZATION_METHOD
    seconds: float = 0.0
    device: str = ""
    model_name: str = ""
    check: FeatureCheck | None = None  # the picture against the channel's natural exemplars

    _not_in_dict = ("image", "check")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (not the image), with the check's when it ran."""
        return {**super().to_dict(), "check": None if self.check is None else self.check.to_dict()}

    def summary(self) -> pd.DataFrame:
        """The headline numbers in one row: activation achieved, against photos and noise, the gain, and the
        check against natural exemplars (reach, agreement, trustworthy) when it ran."""
        row = {"layer": self.layer, "channel": self.channel, "activation": self.activation,
               "photo_activation": self.photo_activation, "photo_max": self.photo_max,
               "noise_activation": self.noise_activation, "gain_over_photos": self.gain_over_photos}
        if self.check is not None:
            row.update({str(k): v for k, v in self.check.summary().drop(columns=["layer", "channel"]).iloc[0].items()})
        return pd.DataFrame([row])

    def verdict(self) -> str:
        """Whether to trust the picture (the check's verdict), or that it was not checked."""
        if self.check is None:
            return "Not checked against natural exemplars (visualize_channel(..., check=True) does)."
        return self.check.verdict()

    @headline
    def gain_over_photos(self) -> float:
        """Achieved activation ÷ mean activation of the reference photos."""
        return self.activation / self.photo_activation if self.photo_activation > 0 else math.inf


def _frequency_scale(height: int, width: int) -> torch.Tensor:
    """1 / frequency for the rfft2 grid (low frequencies get large steps: smooth, natural-looking images)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / max(height, width))


def _to_pixels(spectrum: torch.Tensor, scale: torch.Tensor, size: int, decorrelate: bool) -> torch.Tensor:
    """Fourier coefficients → a (1, C, size, size) image in [0, 1]."""
    image = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size), norm="ortho") / 4
    if decorrelate:
        image = torch.einsum("dc,chw->dhw", _COLOR_SQRT.to(image.device), image)
    return torch.sigmoid(image)[None]


def _transform(pixels: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """Lucid's standard transforms: pad with grey, jitter, random scale and rotation, jitter, back to ``size``."""
    image = F.pad(pixels, (_PAD,) * 4, value=0.5)
    for jitter in (_JITTER, None, _JITTER_FINE):
        if jitter is None:
            scale, angle = float(rng.choice(_SCALES)), math.radians(float(rng.choice(_ANGLES)))
            cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
            theta = torch.tensor([[[cos, -sin, 0.0], [sin, cos, 0.0]]], dtype=image.dtype, device=image.device)
            grid = F.affine_grid(theta, list(image.shape), align_corners=False)
            image = F.grid_sample(image, grid, padding_mode="border", align_corners=False)
            continue
        dy, dx = (int(v) for v in rng.integers(0, jitter + 1, size=2))
        image = image[..., dy : image.shape[-2] - jitter + dy, dx : image.shape[-1] - jitter + dx]
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


#: Rectifiers whose zero region passes no gradient: a channel that is off for the starting image could never
#: be switched on, so the optimization targets their input (the pre-activation, as Lucid's ``*_pre_relu``).
_RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.Hardtanh)


def _pre_activation_site(classifier: Classifier, layer: str, inputs: torch.Tensor) -> str | None:
    """Name of the rectifier whose output *is* ``layer``'s output (e.g. ``bn2.act`` in timm's BatchNormAct2d)."""
    root = classifier.get_layer(layer)
    if isinstance(root, _RECTIFIERS):
        return layer
    rectifiers = [f"{layer}.{name}" for name, sub in root.named_modules() if name and isinstance(sub, _RECTIFIERS)]
    if not rectifiers:
        return None
    try:
        outputs = capture(classifier, inputs, [*rectifiers, layer])
    except InputError:  # a rectifier that never runs cannot be the layer's last step
        return None
    # `capture` clones, so compare values: the rectifier that produced the layer's output matches it exactly
    matches = [name for name in rectifiers if outputs[name].shape == outputs[layer].shape
               and torch.equal(outputs[name], outputs[layer])]
    return matches[-1] if matches else None


def _channel_mean(
    classifier: Classifier, layer: str, channel: int, pixels: torch.Tensor, grad: bool, site: str | None = None
) -> torch.Tensor:
    """Mean of one channel over positions, per image; of the pre-activation at ``site`` when given."""
    inputs = classifier.normalize(pixels)
    if site is None:
        output = capture(classifier, inputs, [layer], grad=grad)[layer]
    else:
        output = capture(classifier, inputs, [site], grad=grad, layer_inputs=True)[site]
    maps = as_maps(classifier, layer, output.float())
    check_channel(maps.shape[1], channel, layer)
    return maps[:, channel].flatten(1).mean(1)


@legacy_positional("layer", "channel")
def visualize_channel(
    classifier: Classifier,
    *,
    layer: str,
    channel: int,
    steps: int = 96,
    size: int = 128,
    lr: float = 0.05,
    seed: int = 0,
    reference_images: ImageBatch | Mapping | None = None,
    check: bool = True,
    exemplars: ImageBatch | Dataset | Mapping | None = None,
    top_k: int = 9,
    progress: bool = True,
    budget_seconds: float | None = None,
) -> FeatureVisualization:
    """Optimize an image to excite ``channel`` of ``layer`` (feature visualization, as in Lucid).

    The image is parameterized in a decorrelated Fourier basis (spectrum scaled by 1/frequency, colours
    decorrelated, a sigmoid keeps pixels valid) and optimized with Adam through random pad / jitter /
    scale / rotation, so the result is a pattern rather than adversarial noise. Models with a fixed input
    size (vision transformers) are optimized at their input size. When the layer ends in a ReLU-type
    rectifier, the optimization raises its input (pre-activation) so channels that start switched off
    still get a gradient; reported activations are always the layer's own output. ``reference_images``
    (default: the bundled sample photos) give the activation to beat. Random draws come from private
    generators seeded with ``seed``; the model runs in eval mode and its weights get no gradient.
    ``check``: also compare the picture with the channel's ``top_k`` natural exemplars among ``exemplars``
    (default: crops of the bundled photos) – see :func:`explainer.inside.feature_check.check_feature_picture`.
    ``progress``: the estimate (``steps`` optimization steps, one timed, and the forwards of the activations and
    the check, timed on two passes), then a bar over the steps on stderr; False is silent. ``budget_seconds``:
    refuse (InputError with what to shrink) a call estimated above it; None is no limit.
    """
    started = time.perf_counter()
    classifier.get_layer(layer)
    if steps < 1 or size < 16:
        raise InputError(f"Need steps >= 1 and size >= 16 pixels; got steps={steps}, size={size}.")
    if any(info.kind == "tokens" for info in feature_layers(classifier).values()):
        size = classifier.input_size[0]  # position embeddings fix a transformer's input size
    # the picture, 4 noise images, the reference photos; the check: its exemplars (32 at a time) and the picture
    sizes = [1, 4, len(_as_items(reference_images)[1]) if reference_images is not None else len(sample_images())]
    if check:
        from explainer.inside.feature_check import DEFAULT_GRID

        found = len(_as_items(exemplars)[1]) if exemplars is not None else DEFAULT_GRID**2 * len(sample_images())
        sizes += [*batches(found, 32), 1]
    bar = start("visualize_channel", lambda: _visualization_estimate(classifier, layer, channel, steps, size, sizes),
                progress=progress, budget_seconds=budget_seconds, total=steps, unit="step", passes=steps + sum(sizes),
                shrink=f"fewer steps (steps={steps} now), a smaller picture (size={size} now), fewer "
                       "exemplars or check=False")
    generator = seeded_generator(seed)
    with bar:
        spectrum, scale, site, history = _optimize_image(classifier, layer, channel, steps, size, lr, seed, generator,
                                                         bar)
    decorrelate = classifier.in_chans == 3
    with torch.inference_mode():
        image = _to_pixels(spectrum, scale, size, decorrelate)
        achieved = float(_channel_mean(classifier, layer, channel, image, grad=False)[0])
        noise = torch.rand(4, classifier.in_chans, size, size, generator=generator).to(classifier.device)
        noise_activation = float(_channel_mean(classifier, layer, channel, noise, grad=False).mean())
        photo_values = _reference_activations(classifier, layer, channel, reference_images, size)
    result = FeatureVisualization(
        layer=layer,
        channel=int(channel),
        image=image[0].float().cpu(),
        activation=achieved,
        noise_activation=noise_activation,
        photo_activation=float(photo_values.mean()),
        photo_max=float(photo_values.max()),
        history=history,
        objective_site=layer if site is None else f"input of {site} (pre-activation)",
        steps=steps,
        size=size,
        lr=lr,
        seed=seed,
        seconds=0.0,
        device=str(classifier.device),
        model_name=classifier.name,
    )
    if check:
        from explainer.inside.feature_check import check_feature_picture

        result.check = check_feature_picture(classifier, result, exemplars, top_k=top_k, seed=seed)
    result.seconds = time.perf_counter() - started
    return result


def _visualization_estimate(classifier: Classifier, layer: str, channel: int, steps: int, size: int,
                            sizes: list[int]) -> Estimate:
    """``steps`` optimization steps (one timed on a probe image: transforms, forward to the objective, gradient)
    and passes of ``sizes`` images to ``layer`` at ``size`` (timed on two passes) for the activations and the check."""
    decorrelate = classifier.in_chans == 3
    with torch.inference_mode(False), torch.enable_grad():
        scale = _frequency_scale(size, size).to(classifier.device)
        spectrum = torch.zeros(classifier.in_chans, size, size // 2 + 1, 2, device=classifier.device, requires_grad=True)
        with torch.no_grad():
            site = _pre_activation_site(classifier, layer, classifier.normalize(_to_pixels(spectrum, scale, size,
                                                                                         decorrelate)))
        rng = np.random.default_rng(0)

        def step() -> None:
            pixels = _transform(_to_pixels(spectrum, scale, size, decorrelate), rng, size)
            torch.autograd.grad(-_channel_mean(classifier, layer, channel, pixels, grad=True, site=site).mean(), spectrum)

        per_step = timed_pass(lambda _samples: step(), 1)
    probe = torch.full((1, classifier.in_chans, size, size), 0.5, device=classifier.device)
    with torch.inference_mode():
        forward = timed_pass(lambda n: _channel_mean(classifier, layer, channel, probe.expand(n, -1, -1, -1), grad=False),
                             max(sizes))
    return Estimate(steps * per_step.seconds(1) + sum(forward.seconds(n) for n in sizes),
                    f"{steps} optimization steps × {duration(per_step.seconds(1))} + {sum(sizes)} forward(s) to {layer} "
                    f"at {forward.words()} for the activations and the check, measured on {classifier.device}")


def _optimize_image(
    classifier: Classifier, layer: str, channel: int, steps: int, size: int, lr: float, seed: int,
    generator: torch.Generator, bar: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, str | None, np.ndarray]:
    """Adam on the Fourier spectrum: the final spectrum (detached), its frequency scale, the objective's
    site (a rectifier's input, or None for the layer) and the objective per step."""
    device = classifier.device
    rng = np.random.default_rng(seed)
    decorrelate = classifier.in_chans == 3
    history = np.zeros(steps, dtype=np.float32)
    with torch.inference_mode(False), torch.enable_grad():  # also when the caller is in inference mode
        scale = _frequency_scale(size, size).to(device)
        spectrum = (0.01 * torch.randn(classifier.in_chans, size, size // 2 + 1, 2, generator=generator)).to(device)
        spectrum.requires_grad_(True)
        optimizer = torch.optim.Adam([spectrum], lr=lr)
        with torch.no_grad():
            start = classifier.normalize(_to_pixels(spectrum, scale, size, decorrelate))
            site = _pre_activation_site(classifier, layer, start)
        for step in range(steps):
            pixels = _transform(_to_pixels(spectrum, scale, size, decorrelate), rng, size)
            objective = _channel_mean(classifier, layer, channel, pixels, grad=True, site=site).mean()
            # autograd.grad: gradients flow to the image only, the model's weights get none
            (spectrum.grad,) = torch.autograd.grad(-objective, spectrum)
            optimizer.step()
            history[step] = float(objective.detach())
            if bar is not None:
                bar.update(1)
    return spectrum.detach(), scale, site, history


def _reference_activations(
    classifier: Classifier, layer: str, channel: int, reference_images: ImageBatch | Mapping | None, size: int
) -> torch.Tensor:
    """The channel's mean activation for each reference photo (default: the bundled samples) at ``size``."""
    references = sample_images() if reference_images is None else reference_images
    items, _ = _as_items(references)
    photos = F.interpolate(classifier.to_pixels(items), size=(size, size), mode="bilinear", antialias=True)
    return _channel_mean(classifier, layer, channel, photos.clamp(0, 1).to(classifier.device), grad=False)
