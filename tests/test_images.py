"""load_image: every supported input converts to RGB; every bad input gets a clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explainer import InputError, load_image, sample_images
from explainer.data import images as images_module


def _png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (20, 10), 128),
        Image.new("RGBA", (20, 10), (255, 0, 0, 0)),
        Image.new("P", (20, 10), 3),
        Image.new("I;16", (20, 10), 40000),
        Image.new("CMYK", (20, 10), (0, 0, 0, 0)),
        Image.new("1", (20, 10), 1),
    ],
    ids=["grayscale", "rgba", "palette", "16-bit", "cmyk", "bilevel"],
)
def test_modes_convert_to_rgb(image: Image.Image) -> None:
    result = load_image(_png_bytes(image) if image.mode != "CMYK" else image)
    assert result.mode == "RGB"
    assert result.size == (20, 10)


def test_transparent_pixels_become_white() -> None:
    result = load_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert result.getpixel((0, 0)) == (255, 255, 255)


def test_16bit_is_rescaled_not_clipped() -> None:
    array = np.full((6, 6), 65535 // 2, dtype=np.uint16)
    value = load_image(array).getpixel((0, 0))[0]
    assert 120 <= value <= 135


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.zeros((5, 6), dtype=np.uint8), (6, 5)),
        (np.ones((5, 6, 3), dtype=np.float32), (6, 5)),
        (np.zeros((5, 6, 4), dtype=np.uint8), (6, 5)),
        (np.zeros((5, 6, 1), dtype=bool), (6, 5)),
    ],
)
def test_arrays(array: np.ndarray, expected: tuple[int, int]) -> None:
    assert load_image(array).size == expected


def test_path_and_bytes_round_trip(tmp_path) -> None:
    original = Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8))
    path = tmp_path / "photo.png"
    original.save(path)
    from_path = np.asarray(load_image(path))
    from_bytes = np.asarray(load_image(path.read_bytes()))
    np.testing.assert_array_equal(from_path, np.asarray(original))
    np.testing.assert_array_equal(from_bytes, np.asarray(original))


def test_missing_file_names_the_path(tmp_path) -> None:
    with pytest.raises(InputError, match="not found.*nope.png"):
        load_image(tmp_path / "nope.png")


def test_non_image_file(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture")
    with pytest.raises(InputError, match=r"notes\.png is not an image file"):
        load_image(path)


def test_truncated_file(tmp_path) -> None:
    data = _png_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg is corrupt or truncated"):
        load_image(path)


def test_empty_bytes() -> None:
    with pytest.raises(InputError, match="empty"):
        load_image(b"")


def test_decompression_bomb_refused_before_decoding(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 10_000)
    path = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(path)
    with pytest.raises(InputError, match=r"bomb\.png is too large \(200×200 = 40,000 pixels\)"):
        load_image(path)


def test_oversized_file_refused(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(images_module, "MAX_IMAGE_BYTES", 100)
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="MiB; the limit is"):
        load_image(path)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((3, 20, 30), dtype=np.uint8), "channels-first"),
        (np.zeros((4, 5, 6, 3), dtype=np.uint8), "expected H×W"),
        (np.full((4, 4, 3), 2.0, dtype=np.float32), r"scaled to \[0, 1\]"),
        (np.full((4, 4, 3), np.nan, dtype=np.float32), "NaN"),
        (np.full((4, 4), -5, dtype=np.int32), "outside 0–255"),
    ],
)
def test_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_image(array)


def test_unsupported_type() -> None:
    with pytest.raises(InputError, match="Cannot read an image from a dict"):
        load_image({"not": "an image"})  # type: ignore[arg-type]


def test_sample_images_are_real_photos() -> None:
    photos = sample_images()
    assert {"cat", "coffee", "rocket", "astronaut"} <= set(photos)
    for image in photos.values():
        assert image.mode == "RGB" and min(image.size) >= 200
        assert np.asarray(image).std() > 10  # a real photo, not a flat placeholder


@pytest.mark.parametrize("size", [(224, 224), (100, 300), (37, 41)])
def test_resize_and_crop_gives_the_pixels_of_resize_then_crop(size: tuple[int, int]) -> None:
    from explainer.data.images import resize_and_crop

    photo = sample_images()["cat"]
    height, width = size
    scale = max(height / photo.height, width / photo.width)
    whole = photo.resize((max(width, round(photo.width * scale)), max(height, round(photo.height * scale))),
                         Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (whole.width - width) // 2, (whole.height - height) // 2
    expected = np.asarray(whole.crop((left, top, left + width, top + height)), dtype=int)
    assert np.abs(np.asarray(resize_and_crop(photo, size), dtype=int) - expected).max() <= 1


def test_resize_and_crop_bounds_its_output() -> None:
    from explainer.data.images import resize_and_crop

    strip = load_image(np.zeros((1, 20_000), dtype=np.uint8))
    assert resize_and_crop(strip, (224, 224)).size == (224, 224)
    with pytest.raises(InputError, match="limit is 16,777,216"):
        resize_and_crop(strip, (20_000, 20_000))
    with pytest.raises(InputError, match="two positive integers"):
        resize_and_crop(strip, (True, 3))  # type: ignore[arg-type]
