"""Frozen backbone features of a whole dataset, computed once and cached in memory and on disk.

The cache key is a content hash of the dataset tensors, the backbone's weights and the image
size, so a changed image, weight or size can never return stale features.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.models import Classifier

#: Environment variable that overrides the cache folder (default ``~/.cache/explainer``).
CACHE_ENV = "EXPLAINER_CACHE"
#: Bumped whenever the way features are computed changes, so old cache files are not reused.
FEATURE_VERSION = "pooled-pre-logits-v1"
#: How many datasets' features one process keeps in memory.
MEMORY_ENTRIES = 8

_memory: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()


@dataclass
class Features:
    """Global-pooled penultimate features of a dataset's train and test images.

    ``source`` says where they came from: ``"computed"``, ``"disk"`` or ``"memory"``;
    ``seconds`` is what getting them cost this time.
    """

    train: torch.Tensor
    test: torch.Tensor
    key: str
    source: str
    seconds: float
    path: Path | None


def cache_dir(path: str | Path | None = None) -> Path:
    """The cache folder: ``path``, else ``$EXPLAINER_CACHE``, else ``~/.cache/explainer``."""
    chosen = path if path is not None else os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "explainer"
    return Path(chosen).expanduser()


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 over the shapes, dtypes and bytes of ``tensors`` (hex)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 over a module's parameter and buffer names and values (hex)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor_digest(tensor).encode())
    return digest.hexdigest()


def check_backbone(classifier: Classifier) -> None:
    """Raise InputError unless the classifier's module exposes timm's feature interface."""
    module = classifier.module
    if not (hasattr(module, "forward_features") and hasattr(module, "forward_head")):
        raise InputError(
            f"Backbone {classifier.name!r} has no forward_features/forward_head methods, so its pooled "
            "features cannot be read. Use a timm architecture (e.g. 'efficientnet_lite0', 'resnet18')."
        )


def pooled_features(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Global-pooled penultimate features ``(N, D)`` of a timm module for normalized ``inputs``."""
    timm_module: Any = module  # timm's feature interface, checked by check_backbone
    return timm_module.forward_head(timm_module.forward_features(inputs), pre_logits=True).flatten(1)


def prepare_images(classifier: Classifier, images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Pixels in [0, 1] → the backbone's normalized input at ``image_size`` on its device.

    One-channel images are repeated to the backbone's channel count.
    """
    images = images.to(classifier.device, torch.float32)
    if images.shape[1] == 1 and classifier.in_chans != 1:
        images = images.expand(-1, classifier.in_chans, -1, -1)
    if images.shape[1] != classifier.in_chans:
        raise InputError(
            f"The images have {images.shape[1]} channels but backbone {classifier.name!r} takes {classifier.in_chans}."
        )
    return classifier.normalize(resize(images, image_size))


def resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize a batch to ``image_size`` × ``image_size`` (bilinear, antialiased); no-op at that size."""
    if tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)


def extract_features(
    classifier: Classifier, images: torch.Tensor, image_size: int, batch_size: int = 64
) -> torch.Tensor:
    """Pooled features of ``images`` (pixels in [0, 1]) in eval mode, as float32 on the CPU."""
    check_backbone(classifier)
    module = classifier.module
    with eval_mode(module), torch.inference_mode():
        chunks = [
            pooled_features(module, prepare_images(classifier, chunk, image_size)).float().cpu()
            for chunk in images.split(batch_size)
        ]
    return torch.cat(chunks)


def dataset_features(
    classifier: Classifier,
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    image_size: int,
    *,
    directory: str | Path | None = None,
) -> Features:
    """Features of a train and a test split, from memory, from disk, or computed and stored."""
    start = time.perf_counter()
    parts = [FEATURE_VERSION, classifier.name, module_digest(classifier.module), str(image_size)]
    key = hashlib.sha256("|".join([*parts, tensor_digest(x_train, x_test)]).encode()).hexdigest()[:32]
    path = cache_dir(directory) / "features" / f"{key}.safetensors"
    if key in _memory:
        _memory.move_to_end(key)
        train, test = _memory[key]
        return Features(train, test, key, "memory", time.perf_counter() - start, path)
    source = "disk"
    loaded = _read(path)
    if loaded is None:
        source = "computed"
        loaded = extract_features(classifier, x_train, image_size), extract_features(classifier, x_test, image_size)
        _write(path, *loaded, name=classifier.name, image_size=image_size)
    _memory[key] = loaded
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return Features(loaded[0], loaded[1], key, source, time.perf_counter() - start, path)


def clear_memory_cache() -> None:
    """Forget the features held in memory by this process (disk files stay)."""
    _memory.clear()


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError):  # a corrupt or foreign file is recomputed and replaced
        return None
    if set(tensors) != {"train", "test"}:
        return None
    return tensors["train"], tensors["test"]


def _write(path: Path, train: torch.Tensor, test: torch.Tensor, *, name: str, image_size: int) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(
        {"train": train.contiguous(), "test": test.contiguous()},
        str(temporary),
        metadata={"backbone": name, "image_size": str(image_size), "version": FEATURE_VERSION},
    )
    os.replace(temporary, path)
