"""Property-based fuzzing (hypothesis): load_image and the checkpoint reader raise only the project's errors.

Whatever bytes or arrays come in, ``load_image`` either returns an 8-bit RGB image within the
pixel limit or raises :class:`InputError`; ``read_state_dict`` either returns name → tensor or
raises :class:`ModelLoadError`. Inputs: random bytes, valid files of every accepted format with
random byte edits, cuts and insertions, numpy arrays of many dtypes and shapes, and mutated
safetensors / torch checkpoints. Derandomized, so a run is reproducible.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from explainer.data.images import MAX_IMAGE_PIXELS, load_image
from explainer.errors import InputError, ModelLoadError
from explainer.models.checkpoint_files import read_state_dict

#: Examples per property; raise it for a long run, e.g. EXPLAINER_FUZZ_EXAMPLES=20000.
EXAMPLES = int(os.environ.get("EXPLAINER_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _encoded(fmt: str, mode: str = "RGB", size: tuple[int, int] = (9, 7)) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


SEEDS = {
    "png": _encoded("PNG"), "png_rgba": _encoded("PNG", "RGBA"), "png_palette": _encoded("PNG", "P"),
    "png_16bit": _encoded("PNG", "I;16"), "jpeg": _encoded("JPEG"), "gif": _encoded("GIF", "P"),
    "bmp": _encoded("BMP"), "tiff": _encoded("TIFF"), "tiff_ycbcr": _encoded("TIFF", "YCbCr"),
    "webp": _encoded("WEBP"), "ppm": _encoded("PPM"), "tga": _encoded("TGA"),
}


def _image_or_input_error(source: Any) -> None:
    try:
        image = load_image(source)
    except InputError:
        return
    assert image.mode == "RGB"
    assert 1 <= image.width * image.height <= MAX_IMAGE_PIXELS


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, insert: bytes) -> bytes:
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    if insert:
        at = (edits[0][0] if edits else 0) % len(buffer)
        buffer[at:at] = insert
    if cut is not None:
        del buffer[cut % len(buffer):]
    return bytes(buffer)


@FUZZ
@given(data=st.binary(max_size=600))
def test_load_image_on_random_bytes(data: bytes) -> None:
    _image_or_input_error(data)


@FUZZ
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10_000),
    insert=st.binary(max_size=24),
)
def test_load_image_on_mutated_files_of_every_format(seed: str, edits: list, cut: int | None, insert: bytes) -> None:
    _image_or_input_error(_mutate(SEEDS[seed], edits, cut, insert))


DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64, np.uint64])


@FUZZ
@given(array=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)))
def test_load_image_on_arrays_of_any_dtype_and_shape(array: np.ndarray) -> None:
    _image_or_input_error(array)


@FUZZ
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=12, max_size=12))
def test_load_image_on_float_arrays_with_any_values(values: list[float]) -> None:
    _image_or_input_error(np.array(values, dtype=np.float32).reshape(2, 2, 3))


def _checkpoint_seeds() -> dict[str, bytes]:
    import safetensors.torch

    state = {"conv.weight": torch.randn(2, 3, 3, 3), "fc.bias": torch.zeros(4), "step": torch.tensor(3)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return {"safetensors": safetensors.torch.save(state), "torch": buffer.getvalue()}


CHECKPOINTS = _checkpoint_seeds()


def _state_or_model_error(data: bytes) -> None:
    try:
        state = read_state_dict(data)
    except ModelLoadError:
        return
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())


@FUZZ
@given(
    seed=st.sampled_from(sorted(CHECKPOINTS)),
    edits=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 100_000),
    insert=st.binary(max_size=16),
)
def test_checkpoint_reader_on_mutated_checkpoints(seed: str, edits: list, cut: int | None, insert: bytes) -> None:
    _state_or_model_error(_mutate(CHECKPOINTS[seed], edits, cut, insert))


@FUZZ
@given(data=st.binary(max_size=400))
def test_checkpoint_reader_on_random_bytes(data: bytes) -> None:
    _state_or_model_error(data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_format_loads_unmutated(name: str) -> None:
    assert load_image(SEEDS[name]).size == (9, 7)
