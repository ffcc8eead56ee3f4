"""Control maps: attribution maps that know nothing of the model's reasoning, scored like methods.

A method that does not beat these on a metric has not shown it explains the model on that metric:

* ``control:random`` – uniform noise, drawn per image from a seeded generator;
* ``control:edges`` – Sobel gradient magnitude of the grey image (deletion rewards removing edges);
* ``control:brightness`` – the grey image itself (deletion rewards removing bright pixels);
* ``control:centre`` – a Gaussian centred on the image, sigma 1/4 of the shorter side (photos are
  framed around their subject).

They are scored by :mod:`explainer.evidence.metrics`' protocol beside the methods and appear in
results as methods with those names. Maps are non-negative ``(N, H, W)`` relevance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from explainer.errors import InputError
from explainer.rng import seeded_generator

#: Prefix of every control's name.
PREFIX = "control:"
#: The centre control's sigma as a fraction of the image's shorter side.
CENTRE_SIGMA_FRACTION = 0.25


@dataclass(frozen=True)
class ControlSpec:
    """A control map: its name, title, what it is, and ``make(pixels, seeds) -> (N, H, W)``."""

    name: str
    title: str
    description: str
    make: Callable[[torch.Tensor, Sequence[int]], torch.Tensor]
    control: bool = True


def _grey(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.detach().float().cpu().mean(dim=1, keepdim=True)


def random_map(pixels: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Uniform noise per pixel; image ``n`` draws from a generator seeded with ``seeds[n]``."""
    height, width = pixels.shape[-2:]
    return torch.stack([torch.rand(height, width, generator=seeded_generator(int(s))) for s in seeds])


def edge_map(pixels: torch.Tensor, seeds: Sequence[int] = ()) -> torch.Tensor:
    """Sobel gradient magnitude of the grey image (replicated border)."""
    grey = F.pad(_grey(pixels), (1, 1, 1, 1), mode="replicate")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel, sobel.T]).unsqueeze(1)
    gradients = F.conv2d(grey, kernels)
    return gradients.pow(2).sum(dim=1).sqrt()


def brightness_map(pixels: torch.Tensor, seeds: Sequence[int] = ()) -> torch.Tensor:
    """The grey image: mean of the channels, in [0, 1]."""
    return _grey(pixels)[:, 0]


def centre_map(pixels: torch.Tensor, seeds: Sequence[int] = ()) -> torch.Tensor:
    """A Gaussian centred on the image, sigma = 1/4 of the shorter side; the same for every image."""
    count, _, height, width = pixels.shape
    sigma = CENTRE_SIGMA_FRACTION * min(height, width)
    rows = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    bump = torch.exp(-(rows.view(-1, 1) ** 2 + cols.view(1, -1) ** 2) / (2 * sigma**2))
    return bump.expand(count, height, width).clone()


CONTROLS: dict[str, ControlSpec] = {
    spec.name: spec
    for spec in (
        ControlSpec("control:random", "Random map", "uniform noise, seeded per image", random_map),
        ControlSpec("control:edges", "Edges (Sobel)", "Sobel gradient magnitude of the grey image", edge_map),
        ControlSpec("control:brightness", "Brightness", "the grey image itself", brightness_map),
        ControlSpec("control:centre", "Centre (Gaussian)", "a centred Gaussian, sigma 1/4 of the shorter side",
                    centre_map),
    )
}


def is_control(name: str) -> bool:
    """True for the name of a control map (``control:...``)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def control_maps(name: str, pixels: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """The control ``name``'s relevance ``(N, H, W)`` for pixels ``(N, C, H, W)`` in [0, 1]."""
    if name not in CONTROLS:
        raise InputError(f"Unknown control {name!r}; choose from: {', '.join(CONTROLS)}.")
    if pixels.ndim != 4:
        raise InputError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}.")
    if len(seeds) != pixels.shape[0]:
        raise InputError(f"{len(seeds)} seeds for {pixels.shape[0]} images; give one per image.")
    return CONTROLS[name].make(pixels, seeds).float()
