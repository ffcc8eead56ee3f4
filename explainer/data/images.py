"""Load and validate images from paths, bytes, PIL images or numpy arrays.

Every input is bounded before work: a path must name a regular file (devices, named pipes
and sockets are refused without opening them) of at most :data:`MAX_IMAGE_BYTES`; the
decoded size is read from the header and checked against :data:`MAX_IMAGE_PIXELS` before
any pixel is decoded; :func:`resize_and_crop` resamples only the part of the image that
survives the crop, so its memory scales with the output size. Whatever Pillow or numpy
raise becomes an :class:`~explainer.errors.InputError` naming the input and the fix.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from explainer.errors import ExplainerError, InputError, describe_exception

#: Largest image accepted, in pixels (width × height). Larger files are refused before decoding.
MAX_IMAGE_PIXELS = 40_000_000
#: Largest encoded image accepted, in bytes.
MAX_IMAGE_BYTES = 25 * 1024 * 1024
#: Largest output of :func:`resize_and_crop` (and so the largest model input size), in pixels.
MAX_RESIZE_PIXELS = 4096 * 4096
#: Image formats that are decoded; others (EPS, which runs Ghostscript; PDF; ...) are refused.
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")

ImageSource = str | Path | bytes | bytearray | Image.Image | np.ndarray


def load_image(source: ImageSource, *, name: str | None = None) -> Image.Image:
    """Return ``source`` as a validated 8-bit RGB PIL image.

    ``source`` may be a file path, encoded bytes (PNG, JPEG, ...), a PIL image or a numpy
    array (H×W, H×W×1, H×W×3 or H×W×4; uint8, uint16, bool, other integers in 0–255 or
    float in [0, 1]). Grayscale, RGBA, palette, YCbCr and 16-bit images are converted.
    Corrupt, truncated, oversized or non-image inputs raise :class:`InputError` naming the
    input and the problem; no other exception type escapes.
    """
    if isinstance(source, Image.Image):
        label = name or "PIL image"
        _check_size(source.size, label)
        return _convert(source, label)
    if isinstance(source, np.ndarray):
        label = name or "numpy array"
        return _check_pixels(_array_to_rgb(source, label), label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(bytes(source), name or "uploaded bytes")
    if isinstance(source, (str, Path)):
        label = name or str(source)
        return _decode(read_regular_file(source, limit=MAX_IMAGE_BYTES, label=label, what="image"), label)
    raise InputError(
        f"Cannot read an image from a {type(source).__name__}. "
        "Pass a file path, bytes, a PIL.Image or a numpy array (H×W×3)."
    )


def read_regular_file(
    path: str | Path,
    *,
    limit: int,
    label: str | None = None,
    what: str = "file",
    error: type[ExplainerError] = InputError,
) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``limit`` bytes.

    Folders, devices (``/dev/zero``), named pipes and sockets are refused from ``stat``
    alone, without opening them, so nothing blocks or reads without end. At most
    ``limit + 1`` bytes are ever read, even if the file grows meanwhile. Problems raise
    ``error`` (an explainer error class) naming the path and the fix.
    """
    label = label or str(path)
    check_regular_file(path, limit=limit, label=label, what=what, error=error)
    try:
        descriptor = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise error(f"Cannot open {what} {label}: {exc.strerror or exc}. Check the path and its permissions.") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):  # swapped for a pipe or device after the check
            raise error(f"{label} is not a regular file; give the path of {_a(what)} file.")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise error(f"Cannot read {what} {label}: {exc.strerror or exc}.") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise error(_too_many_bytes(label, len(data), limit, what))
    return data


def check_regular_file(
    path: str | Path,
    *,
    limit: int,
    label: str | None = None,
    what: str = "file",
    error: type[ExplainerError] = InputError,
) -> os.stat_result:
    """``os.stat(path)`` after checking that it is a regular file of at most ``limit`` bytes."""
    label = label or str(path)
    try:
        info = os.stat(os.fspath(path))
    except FileNotFoundError:
        raise error(f"{what.capitalize()} not found: {label}. Check the path.") from None
    except (OSError, ValueError) as exc:  # permission, name too long, symlink loop, NUL in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise error(f"Cannot use {label} as {_a(what)}: {reason}. Check the path.") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{label} is a folder, not {_a(what)}.")
    if not stat.S_ISREG(info.st_mode):
        kind = "named pipe" if stat.S_ISFIFO(info.st_mode) else "device" if (
            stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)) else "socket or special file"
        raise error(
            f"{label} is a {kind}, not a regular file; it is refused so that reading it cannot block or "
            f"run without end. Save the {what} to a file first."
        )
    if info.st_size > limit:
        raise error(_too_many_bytes(label, info.st_size, limit, what))
    return info


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _too_many_bytes(label: str, size: int, limit: int, what: str) -> str:
    return (
        f"{label} is {size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB for {_a(what)}. "
        + ("Resize or recompress the image first." if what == "image" else "Use a smaller file.")
    )


def _decode(data: bytes, label: str) -> Image.Image:
    if len(data) > MAX_IMAGE_BYTES:
        raise InputError(_too_many_bytes(label, len(data), MAX_IMAGE_BYTES, "image"))
    if not data:
        raise InputError(f"{label} is empty (0 bytes); it is not an image.")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")  # e.g. "Truncated File Read"
        try:
            image = Image.open(io.BytesIO(data), formats=_formats())
            _check_size(image.size, label)  # from the header, before a pixel is decoded
            _fix_pillow_ycbcr_tiff(image)
            image.load()
            return _convert(image, label)
        except InputError:
            raise
        except UnidentifiedImageError:
            raise InputError(
                f"{label} is not an image file that can be read ({', '.join(IMAGE_FORMATS[:8])}, ...)."
            ) from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's own check, from the header at open
            raise InputError(_too_large_message(label, None, int(found.group(1)) if found else None)) from None
        except MemoryError:
            raise InputError(f"{label} needs more memory to decode than is available; downscale it first.") from None
        except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, ...
            raise InputError(
                f"{label} is corrupt or truncated and cannot be decoded ({describe_exception(exc, 200)}). "
                "Re-save it as PNG or JPEG."
            ) from None


def _formats() -> list[str]:
    Image.init()
    return [name for name in IMAGE_FORMATS if name in Image.OPEN]



def _fix_pillow_ycbcr_tiff(image: Image.Image) -> None:
    """Read uncompressed YCbCr TIFFs as Pillow writes them (3 bytes per pixel, no subsampling).

    Pillow's reader takes such strips as RGBX (4 bytes per pixel) and then reports the file
    as truncated; the data is really YCbCr, so decode it as YCbCr (converted to RGB later).
    """
    if image.format != "TIFF" or not isinstance(image, ImageFile.ImageFile):
        return
    tags = getattr(image, "tag_v2", {})
    if (tags.get(262) == 6 and tags.get(259, 1) == 1 and tuple(tags.get(258, ())) == (8, 8, 8)
            and tuple(tags.get(530, (1, 1))) == (1, 1) and tags.get(284, 1) == 1):
        image.tile = [
            tile._replace(args=("YCbCr", *tile.args[1:])) if tile.codec_name == "raw" and isinstance(tile.args, tuple)
            else tile
            for tile in image.tile
        ]
        image._mode = "YCbCr"  # noqa: SLF001 - Pillow has no public setter; the tile now decodes YCbCr


def _too_large_message(label: str, size: tuple[int, int] | None, pixels: int | None = None) -> str:
    dims = f" ({size[0]}×{size[1]} = {size[0] * size[1]:,} pixels)" if size else f" ({pixels:,} pixels)" if pixels else ""
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


def _convert(image: Image.Image, label: str) -> Image.Image:
    """:func:`_to_rgb` with Pillow's and numpy's errors turned into an InputError."""
    try:
        return _to_rgb(image)
    except MemoryError:
        raise InputError(f"{label} needs more memory to convert than is available; downscale it first.") from None
    except Exception as exc:  # an unusual mode Pillow cannot convert, a lazy image that fails to load
        raise InputError(
            f"{label} (mode {image.mode!r}) cannot be converted to RGB ({describe_exception(exc, 200)}). "
            "Save it as an 8-bit RGB, grayscale or RGBA image."
        ) from None


def resize_and_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize ``image`` to cover ``size`` = (height, width) with bilinear antialiasing, then center-crop.

    Computed as one resample of the source region that survives the crop (Pillow's ``box=``),
    which gives the same pixels as resizing the whole image and cropping it, but with memory
    proportional to the output: a 1×20,000 strip no longer becomes a 224×4,480,000 image.
    The output is limited to :data:`MAX_RESIZE_PIXELS`.
    """
    height, width = _check_target_size(size)
    scale = max(height / image.height, width / image.width)
    new_width = max(width, round(image.width * scale))
    new_height = max(height, round(image.height * scale))
    left, top = (new_width - width) // 2, (new_height - height) // 2
    step_x, step_y = image.width / new_width, image.height / new_height
    box = (left * step_x, top * step_y, (left + width) * step_x, (top + height) * step_y)
    return image.resize((width, height), Image.Resampling.BILINEAR, box=box, reducing_gap=None)


def _check_target_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = size
    except (TypeError, ValueError):
        raise InputError(f"An image size must be (height, width), got {size!r}.") from None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"An image size must be two positive integers, got {size!r}.")
    if int(height) * int(width) > MAX_RESIZE_PIXELS:
        raise InputError(
            f"An image size of {height}×{width} is {int(height) * int(width):,} pixels; the limit is "
            f"{MAX_RESIZE_PIXELS:,} ({math.isqrt(MAX_RESIZE_PIXELS)}² pixels). Use a smaller size."
        )
    return int(height), int(width)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white, 16-bit rescaled)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(array.max())
        peak = 65535.0 if image.mode.startswith("I;16") or top > 255 else 255.0
        if image.mode == "F" and top <= 1.0:
            peak = 1.0
        array = np.clip(array / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray, label: str) -> Image.Image:
    if array.dtype.kind not in "buif":
        raise InputError(
            f"{label} has dtype {array.dtype}; pass uint8, uint16, bool, integers in 0–255 or floats in [0, 1]."
        )
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
    _check_size((int(array.shape[1]), int(array.shape[0])), label)  # before any copy of the pixels
    try:
        array = _array_to_uint8(array, label)
        mode = "L" if array.ndim == 2 else ("RGBA" if array.shape[-1] == 4 else "RGB")
        return _to_rgb(Image.fromarray(np.ascontiguousarray(array), mode=mode))
    except InputError:
        raise
    except (MemoryError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{label} cannot be converted to an image ({describe_exception(exc, 200)}).") from None


def _array_to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array.astype(np.float32) / 65535.0 * 255.0).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        with np.errstate(all="ignore"):
            if not np.isfinite(array).all():
                raise InputError(f"{label} contains NaN or infinite values.")
            low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InputError(
                f"{label} is a float array with values in [{low:.3g}, {high:.3g}]; "
                "float images must be scaled to [0, 1] (or pass uint8 values 0–255)."
            )
        return (array.astype(np.float32) * 255.0).round().astype(np.uint8)
    if array.dtype != np.uint8:
        if int(array.min()) < 0 or int(array.max()) > 255:
            raise InputError(
                f"{label} has dtype {array.dtype} with values outside 0–255; pass uint8, uint16 or floats in [0, 1]."
            )
        return array.astype(np.uint8)
    return array


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
