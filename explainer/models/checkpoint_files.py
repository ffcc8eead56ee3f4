"""Checkpoint files read safely: safetensors or weights-only torch zips, bounded before anything is loaded."""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from explainer.data.images import check_regular_file
from explainer.errors import ExplainerError, ModelLoadError, describe_exception

#: Largest checkpoint file (or upload) read, in bytes.
MAX_CHECKPOINT_BYTES = 4 * 2**30
#: A torch zip may declare at most this many times its own size (torch stores tensors uncompressed).
MAX_INFLATION = 1.5
#: Most entries a torch zip may have.
MAX_CHECKPOINT_ENTRIES = 100_000
#: Largest safetensors JSON header, in bytes (the safetensors format's own limit).
MAX_SAFETENSORS_HEADER = 100_000_000
#: File name endings read as checkpoints.
CHECKPOINT_SUFFIXES = frozenset({".safetensors", ".pt", ".pth", ".bin", ".ckpt"})


def read_state_dict(source: str | Path | bytes | bytearray | memoryview) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or a weights-only torch file (a path or its bytes).

    Never runs pickled code. Bounded before anything is loaded: the file must be a regular
    file of at most :data:`MAX_CHECKPOINT_BYTES`; a torch zip may not declare more content
    than :data:`MAX_INFLATION` times its own size (torch stores tensors uncompressed, so a
    larger total is a zip bomb); a safetensors header must fit in the file and its tensors'
    byte ranges must lie inside it. Torch's pre-1.6 (non-zip) format is refused, since it
    allocates whatever its pickle declares before reading. Every failure is a ModelLoadError.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        label, size = "the uploaded checkpoint", len(raw)
        if size > MAX_CHECKPOINT_BYTES:
            raise ModelLoadError(f"{label} is {size / 2**30:.1f} GiB; the limit is {MAX_CHECKPOINT_BYTES / 2**30:.0f} GiB.")
        kind = _checkpoint_kind(raw[:16], label)
        data: bytes | None = raw
    else:
        path = Path(source)
        label = path.name or str(path)
        info = check_regular_file(path, limit=MAX_CHECKPOINT_BYTES, label=str(path), what="checkpoint",
                                  error=ModelLoadError)
        data, size = None, info.st_size
        kind = "safetensors" if path.suffix.lower() == ".safetensors" else _checkpoint_kind(_head(path), label)
    try:
        if kind == "safetensors":
            state = _read_safetensors(path if data is None else data, size, label)
        else:
            state = _read_torch_zip(path if data is None else data, size, label)
    except ExplainerError:
        raise
    except MemoryError:
        raise ModelLoadError(f"{label} needs more memory to load than is available.") from None
    except Exception as exc:  # torch, zipfile or safetensors raised one of their own
        raise ModelLoadError(f"{label} is not a readable checkpoint ({describe_exception(exc)}).") from None
    return _clean_state(state, label)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(16)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read checkpoint {path}: {exc.strerror or exc}.") from None


def _checkpoint_kind(head: bytes, label: str) -> str:
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":
        raise ModelLoadError(
            f"{label} is in torch's legacy (pre-1.6) format, which allocates whatever it declares before reading "
            "and is refused. Re-save it with a current torch: torch.save(torch.load(f, weights_only=True), 'weights.pt'), or as "
            "safetensors."
        )
    raise ModelLoadError(
        f"{label} is neither a safetensors file nor a PyTorch checkpoint (zip). Save weights with "
        "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors') or torch.save(model.state_dict(), ...)."
    )


def _read_torch_zip(source: Path | bytes, size: int, label: str) -> Any:
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelLoadError(f"{label} is not a readable PyTorch checkpoint ({describe_exception(exc)}).") from None
    declared = sum(entry.file_size for entry in entries)
    if len(entries) > MAX_CHECKPOINT_ENTRIES or declared > MAX_INFLATION * size + 2**20:
        raise ModelLoadError(
            f"{label} ({size / 2**20:.1f} MiB) declares {declared / 2**20:,.1f} MiB in {len(entries):,} entries; "
            f"refused before loading (at most {MAX_INFLATION:g}× the file size: torch stores tensors uncompressed, "
            "so this is a zip bomb or a damaged file). Re-save it with torch.save(model.state_dict(), ...)."
        )
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        loaded = torch.load(stream, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"Refused to load {label}: it contains pickled Python objects (for example a whole model saved "
            "with torch.save(model)), and unpickling them could execute arbitrary code. explainer only reads "
            "weights. Save a state dict instead – torch.save(model.state_dict(), 'weights.pt') or "
            f"safetensors.torch.save_file(model.state_dict(), 'weights.safetensors').{_unsafe_global(exc)}"
        ) from None
    for key in ("state_dict", "model_state_dict", "model", "weights"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            return loaded[key]
    return loaded


def _read_safetensors(source: Path | bytes, size: int, label: str) -> Any:
    if isinstance(source, bytes):
        head = source[:8]
    else:
        head = _head(source)[:8]
    if len(head) < 8:
        raise ModelLoadError(f"{label} is not a valid safetensors file (only {size} bytes).")
    header_size = int.from_bytes(head, "little")
    if header_size > min(size - 8, MAX_SAFETENSORS_HEADER):
        raise ModelLoadError(
            f"{label} is not a valid safetensors file: its header claims {header_size:,} bytes but the file has "
            f"{size:,} (header limit {MAX_SAFETENSORS_HEADER:,}). The file is damaged or hostile."
        )
    if isinstance(source, bytes):
        header = source[8 : 8 + header_size]
    else:
        with open(source, "rb") as handle:
            handle.seek(8)
            header = handle.read(header_size)
    _check_safetensors_header(header, size - 8 - header_size, label)
    from safetensors.torch import load, load_file

    return load(source) if isinstance(source, bytes) else load_file(str(source), device="cpu")


def _check_safetensors_header(header: bytes, data_size: int, label: str) -> None:
    try:
        entries = json.loads(header)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{label} is not a valid safetensors file (header is not JSON: {exc}).") from None
    if not isinstance(entries, dict):
        raise ModelLoadError(f"{label} is not a valid safetensors file (header is not a JSON object).")
    for name, entry in entries.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ModelLoadError(
                f"{label} is not a valid safetensors file: tensor {name!r} points outside the file's "
                f"{data_size:,} data bytes ({offsets!r})."
            )


def _clean_state(loaded: Any, label: str) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelLoadError(f"{label} does not hold a state dict (name → tensor); save model.state_dict() instead.")
    odd = [repr(k) for k in loaded if not isinstance(k, str)]
    if odd:
        raise ModelLoadError(
            f"{label} has keys that are not parameter names ({', '.join(odd[:5])}); a state dict maps names such "
            "as 'fc.weight' to tensors. Save model.state_dict()."
        )
    return {k.removeprefix("module."): v for k, v in loaded.items()}


def _unsafe_global(exc: Exception) -> str:
    """The Python object torch refused to unpickle, as a short note (empty when torch names none)."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    return f" (It holds a {match.group(1)} object.)" if match else ""
