"""`Classifier`: a module with its preprocessing, labels, named layers and device."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from explainer.compat import legacy_positional
from explainer.data.images import ImageSource, load_image, resize_and_crop
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.hardware import resolve_device
from explainer.models.predictions import Prediction
from explainer.models.predictions import top_k as _top_k

BUNDLED_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Seconds to wait for a TCP connection before declaring a model hub unreachable.
NETWORK_PROBE_SECONDS = 1.0

ImageBatch = ImageSource | Sequence[ImageSource] | torch.Tensor


@dataclass(eq=False)
class Classifier:
    """An image classifier with everything needed to explain it.

    ``module`` maps a normalized batch ``(N, C, H, W)`` to logits. Images (paths, PIL,
    arrays, or pixel tensors in [0, 1]) go through :meth:`preprocess` first. Wrapping puts the
    module in eval mode once; every library call afterwards runs it in eval mode and restores the
    ``training`` flags it found, so a module the user trains further is left as it was.
    """

    module: nn.Module
    labels: list[str]
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    name: str = "custom"
    source: str = "module"
    pretrained: bool = True
    _layers: dict[str, nn.Module] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.module.eval()
        self._layers = dict(self.module.named_modules())
        if len(self.mean) != len(self.std):
            raise InputError(f"mean has {len(self.mean)} values but std has {len(self.std)}; give one per channel.")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        labels: Sequence[str] | None = None,
        input_size: int | tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        in_chans: int | None = None,
        name: str = "custom",
        dataset: Any = None,
    ) -> Classifier:
        """Wrap your own ``nn.Module``. Without ``labels``, classes are named ``class 0`` ...

        ``dataset`` (an image :class:`~explainer.Dataset` the module was trained on) sets the defaults of
        ``labels``, ``input_size`` and ``in_chans`` from its class names and image shape; otherwise
        ``input_size`` defaults to 224 and ``in_chans`` to what the module's first convolution takes (3
        without one); a value that the first convolution does not take fails at once. ``mean``/``std``
        default to no normalization (0 and 1 per channel: datasets hold pixels in [0, 1]).
        """
        if not isinstance(module, nn.Module):
            raise InputError(f"from_module needs a torch.nn.Module, got {type(module).__name__}.")
        if dataset is not None:
            shape = tuple(int(n) for n in getattr(dataset, "input_shape", ()))
            if len(shape) != 3:
                raise InputError(f"from_module(dataset=...) needs an image dataset (channels, height, width); "
                                 f"{getattr(dataset, 'name', type(dataset).__name__)} holds {shape or 'no'}-shaped "
                                 "examples.")
            labels = list(dataset.class_names) if labels is None else labels
            input_size = (shape[1], shape[2]) if input_size is None else input_size
            in_chans = shape[0] if in_chans is None else in_chans
        size = _size_pair(224 if input_size is None else input_size)
        expected = _first_conv_channels(module)
        if in_chans is None:
            in_chans = len(mean) if mean is not None else expected or 3
        elif expected is not None and expected != in_chans and not _runs_on(module, in_chans, size):
            raise InputError(
                f"The module's first convolution takes {expected} channel(s), not in_chans={in_chans}: "
                f"Classifier.from_module(net, input_size={size}, in_chans={expected})."
            )
        mean = tuple(mean) if mean is not None else (0.0,) * in_chans
        std = tuple(std) if std is not None else (1.0,) * in_chans
        if labels is None:
            num_classes = _count_outputs(module, len(mean), size)
            labels = [f"class {i}" for i in range(num_classes)]
        return cls(module=module, labels=list(labels), input_size=size, mean=mean, std=std, name=name)

    def __repr__(self) -> str:
        parameters = sum(p.numel() for p in self.module.parameters())
        return (f"Classifier({self.name!r}, {type(self.module).__name__}, {parameters:,} parameters, "
                f"{self.num_classes} classes, input {self.in_chans}×{self.input_size[0]}×{self.input_size[1]}, "
                f"source={self.source!r}, device={self.device.type!r})")

    # ------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        """The device the module's parameters live on."""
        for tensor in self.module.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def in_chans(self) -> int:
        return len(self.mean)

    def to(self, device: str | torch.device) -> Classifier:
        """Move the module to ``device`` (in place) and return self."""
        self.module.to(resolve_device(device))
        return self

    # ---------------------------------------------------------------------- layers
    def layer_names(self) -> list[str]:
        """Names of all sub-modules, in forward-definition order ('' is the whole model)."""
        return [name for name in self._layers if name]

    def get_layer(self, name: str) -> nn.Module:
        """Return the sub-module called ``name``; unknown names list close candidates."""
        if name in self._layers and name:
            return self._layers[name]
        candidates = difflib.get_close_matches(name, self.layer_names(), n=8, cutoff=0.4)
        hint = candidates or self.layer_names()[-8:]
        raise InputError(
            f"Unknown layer {name!r} in {self.name}. Close matches: {', '.join(hint)}. "
            "classifier.layer_names() lists all of them."
        )

    # --------------------------------------------------------------- preprocessing
    def to_pixels(self, images: ImageBatch) -> torch.Tensor:
        """Images as a float batch ``(N, C, H, W)`` in [0, 1] at the model's input size (CPU).

        PIL/paths/arrays are resized (shorter side to the input size, bilinear, antialiased)
        and center-cropped. Tensors are taken as pixels in [0, 1], ``(C, H, W)`` or ``(N, C, H, W)``.
        """
        if isinstance(images, torch.Tensor):
            return self._tensor_pixels(images)
        items: list[ImageSource] = [images] if _is_single_image(images) else list(images)  # type: ignore[list-item, arg-type]
        if not items:
            raise InputError("No images given; pass at least one image.")
        return torch.stack([self._pil_pixels(load_image(item)) for item in items])

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Map pixels in [0, 1] to the model's input space (subtract mean, divide by std)."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        return (pixels - mean) / std

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`: model inputs back to pixels in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=inputs.dtype, device=inputs.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=inputs.dtype, device=inputs.device).view(1, -1, 1, 1)
        return inputs * std + mean

    def preprocess(self, images: ImageBatch) -> torch.Tensor:
        """Images → normalized model input ``(N, C, H, W)`` on the classifier's device."""
        return self.normalize(self.to_pixels(images)).to(self.device)

    def _pil_pixels(self, image: Image.Image) -> torch.Tensor:
        if self.in_chans == 1:
            image = image.convert("L")
        cropped = resize_and_crop(image, self.input_size)  # memory ∝ output, not the resized whole
        array = np.asarray(cropped, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[..., None]
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def _tensor_pixels(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim == 3:
            tensor = tensor.unsqueeze(0)
        if tensor.ndim != 4:
            raise InputError(
                f"Image tensors must be (C, H, W) or (N, C, H, W); got shape {tuple(tensor.shape)}."
            )
        if tensor.shape[1] != self.in_chans:
            if tensor.shape[-1] == self.in_chans and tensor.shape[1] not in (1, 3):
                hint = " It looks channels-last; use tensor.permute(0, 3, 1, 2)."
            else:
                hint = ""
            raise InputError(
                f"{self.name} expects {self.in_chans} channel(s) but the tensor has shape "
                f"{tuple(tensor.shape)} (channels = dim 1).{hint}"
            )
        tensor = tensor.detach().float().cpu()
        if not torch.isfinite(tensor).all():
            raise InputError("The image tensor contains NaN or infinite values.")
        if tensor.min() < -1e-3 or tensor.max() > 1 + 1e-3:
            raise InputError(
                f"Pixel tensors must hold values in [0, 1]; got [{tensor.min():.3g}, {tensor.max():.3g}]. "
                "Divide uint8 images by 255; pass already-normalized inputs to classifier.module directly."
            )
        if tuple(tensor.shape[-2:]) != tuple(self.input_size):
            tensor = _resize_crop_tensor(tensor, self.input_size)
        return tensor

    # ----------------------------------------------------------------- prediction
    @legacy_positional("batch_size")
    def logits(self, images: ImageBatch, *, batch_size: int = 32) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for a batch of images, computed without gradients in eval mode
        (every ``training`` flag of the module is restored afterwards)."""
        inputs = self.preprocess(images)
        with eval_mode(self.module), torch.inference_mode():
            return torch.cat([self.module(chunk) for chunk in inputs.split(batch_size)]).float()

    @legacy_positional("top_k")
    def predict(self, images: ImageBatch, *, top_k: int = 5) -> list[list[Prediction]]:
        """The ``top_k`` most probable classes per image: label, class index and probability."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}.")
        return _top_k(self.logits(images).softmax(dim=1), self.labels, top_k)

    def class_index(self, target: int | str) -> int:
        """Resolve a class index or label name; out-of-range or unknown targets raise clearly."""
        if isinstance(target, (bool, np.bool_)):
            raise InputError(f"target must be a class index or label, not {target!r}.")
        if isinstance(target, (int, np.integer)):
            index = int(target)
            if not 0 <= index < self.num_classes:
                raise InputError(
                    f"Target class {index} is out of range: {self.name} has {self.num_classes} classes "
                    f"(valid indices 0–{self.num_classes - 1})."
                )
            return index
        if isinstance(target, str):
            if target.strip().lstrip("-").isdigit():
                return self.class_index(int(target))
            lowered = [label.lower() for label in self.labels]
            if target.lower() in lowered:
                return lowered.index(target.lower())
            close = difflib.get_close_matches(target.lower(), lowered, n=6, cutoff=0.5)
            shown = [self.labels[lowered.index(c)] for c in close] or self.labels[:10]
            raise InputError(
                f"Unknown class label {target!r} for {self.name}. "
                f"{'Close matches' if close else 'Valid labels include'}: {', '.join(shown)}."
            )
        raise InputError(f"target must be an int index or a label string, got {type(target).__name__}.")


# ---------------------------------------------------------------------------- helpers
def _size_pair(input_size: int | Sequence[int]) -> tuple[int, int]:
    """``224`` or ``(224, 224)`` as a (height, width) pair; anything else raises InputError."""
    if isinstance(input_size, int):
        return (int(input_size), int(input_size))
    pair = tuple(int(s) for s in input_size)
    if len(pair) != 2:
        raise InputError(f"input_size must be one size or (height, width), got {tuple(input_size)!r}.")
    return (pair[0], pair[1])


def _is_single_image(images: Any) -> bool:
    return isinstance(images, (str, Path, bytes, bytearray, Image.Image, np.ndarray))


def _resize_crop_tensor(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    height, width = size
    scale = max(height / tensor.shape[-2], width / tensor.shape[-1])
    new_h = max(height, round(tensor.shape[-2] * scale))
    new_w = max(width, round(tensor.shape[-1] * scale))
    resized = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[..., top : top + height, left : left + width].clamp(0, 1)


def _first_conv_channels(module: nn.Module) -> int | None:
    """Input channels of the module's first convolution (None without one)."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return int(sub.in_channels)
    return None


def _runs_on(module: nn.Module, in_chans: int, size: tuple[int, int]) -> bool:
    """True when ``module`` accepts a ``(1, in_chans, *size)`` input (a module may add channels before its first conv)."""
    try:
        _count_outputs(module, in_chans, size)
    except InputError:
        return False
    return True


def _count_outputs(module: nn.Module, in_chans: int, size: tuple[int, int]) -> int:
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    try:
        with eval_mode(module), torch.inference_mode():
            out = module(torch.zeros(1, in_chans, *size, device=device))
    except Exception as exc:  # the user's module rejected the probe input
        raise InputError(
            f"Could not run the module on a (1, {in_chans}, {size[0]}, {size[1]}) input to count its classes "
            f"({exc}). Pass labels=[...] and the right input_size/in_chans."
        ) from None
    if out.ndim != 2:
        raise InputError(f"The module returned shape {tuple(out.shape)}; a classifier must return (N, classes) logits.")
    return int(out.shape[1])


@lru_cache(maxsize=1)
def imagenet_labels() -> list[str]:
    """Short, unique ImageNet-1k class names (from ``timm.data.ImageNetInfo``)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    full = [info.index_to_description(i) for i in range(1000)]
    short = [name.split(",")[0].strip() for name in full]
    counts = {name: short.count(name) for name in short}
    return [s if counts[s] == 1 else f"{s} ({i})" for i, s in enumerate(short)]
