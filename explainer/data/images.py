"""Load and validate images from paths, bytes, PIL images or numpy arrays."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from explainer.errors import InputError

#: Largest image accepted, in pixels (width × height). Larger files are refused before decoding.
MAX_IMAGE_PIXELS = 40_000_000
#: Largest encoded image accepted, in bytes.
MAX_IMAGE_BYTES = 25 * 1024 * 1024

ImageSource = str | Path | bytes | bytearray | Image.Image | np.ndarray


def load_image(source: ImageSource, *, name: str | None = None) -> Image.Image:
    """Return ``source`` as a validated 8-bit RGB PIL image.

    ``source`` may be a file path, encoded bytes (PNG, JPEG, ...), a PIL image or a numpy
    array (H×W, H×W×1, H×W×3 or H×W×4; uint8, uint16, bool or float in [0, 1]).
    Grayscale, RGBA, palette and 16-bit images are converted. Corrupt, truncated, oversized
    or non-image inputs raise :class:`InputError` naming the input and the problem.
    """
    if isinstance(source, Image.Image):
        return _check_pixels(_to_rgb(source), name or "PIL image")
    if isinstance(source, np.ndarray):
        return _check_pixels(_array_to_rgb(source, name or "numpy array"), name or "numpy array")
    if isinstance(source, (bytes, bytearray)):
        return _decode(bytes(source), name or "uploaded bytes")
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = name or str(path)
        if not path.exists():
            raise InputError(f"Image file not found: {label}. Check the path.")
        if path.is_dir():
            raise InputError(f"{label} is a folder, not an image file.")
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise InputError(
                f"{label} is {size / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} MiB. "
                "Resize or recompress the image first."
            )
        return _decode(path.read_bytes(), label)
    raise InputError(
        f"Cannot read an image from a {type(source).__name__}. "
        "Pass a file path, bytes, a PIL.Image or a numpy array (H×W×3)."
    )


def _decode(data: bytes, label: str) -> Image.Image:
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(
            f"{label} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} MiB."
        )
    if not data:
        raise InputError(f"{label} is empty (0 bytes); it is not an image.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise InputError(
                    f"{label} is not an image file that can be read (PNG, JPEG, BMP, GIF, TIFF, WebP ...)."
                ) from None
            raise InputError(_too_large_message(label, None)) from None
        _check_size(image.size, label)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"{label} is corrupt or truncated and cannot be decoded ({exc}).") from None
    return _to_rgb(image)


def _too_large_message(label: str, size: tuple[int, int] | None) -> str:
    dims = f" ({size[0]}×{size[1]} = {size[0] * size[1]:,} pixels)" if size else ""
    return (
        f"{label} is too large{dims}; the limit is {MAX_IMAGE_PIXELS:,} pixels, which also guards "
        "against decompression bombs. Downscale the image first."
    )


def _check_size(size: tuple[int, int], label: str) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(_too_large_message(label, size))
    if width < 1 or height < 1:
        raise InputError(f"{label} has no pixels ({width}×{height}).")


def _check_pixels(image: Image.Image, label: str) -> Image.Image:
    _check_size(image.size, label)
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit rescaled)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F" and array.max() <= 1.0:
            peak = 1.0
        array = np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        raise InputError(
            f"{label} has shape {array.shape}, which looks channels-first (C×H×W). "
            "Pass H×W×C instead, e.g. array.transpose(1, 2, 0)."
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(
            f"{label} has shape {array.shape}; expected H×W (grayscale), H×W×3 (RGB) or H×W×4 (RGBA)."
        )
    if array.size == 0:
        raise InputError(f"{label} is empty (shape {array.shape}).")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = (array.astype(np.float64) / 65535.0 * 255.0).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(f"{label} contains NaN or infinite values.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"{label} is a float array with values in [{low:.3g}, {high:.3g}]; "
                "float images must be scaled to [0, 1] (or pass uint8 values 0–255)."
            )
        array = (array * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise InputError(
                f"{label} has dtype {array.dtype} with values outside 0–255; pass uint8, uint16 or floats in [0, 1]."
            )
        array = array.astype(np.uint8)
    mode = "L" if array.ndim == 2 else ("RGBA" if array.shape[-1] == 4 else "RGB")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array), mode=mode))


def sample_images() -> dict[str, Image.Image]:
    """Real photos bundled with scikit-image, by name (no network needed).

    The bundled EfficientNet-Lite0 recognises them: cat → Egyptian cat, coffee → espresso,
    rocket → missile/space shuttle, camera → tripod.
    """
    from skimage import data as skdata

    sources = {
        "cat": skdata.chelsea,
        "coffee": skdata.coffee,
        "rocket": skdata.rocket,
        "astronaut": skdata.astronaut,
        "camera": skdata.camera,
        "china": _china,
    }
    return {name: load_image(fetch(), name=name) for name, fetch in sources.items()}


def _china() -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image("china.jpg")
