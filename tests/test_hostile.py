"""Hostile-input corpus (issue 14): each kind of bad input, the error it must give, and its cost.

Every case runs in a forked child of a helper process (``python tests/test_hostile.py GROUP DIR``)
that imported explainer once; the parent reads the child's peak memory and CPU time from
``os.wait4`` (not wall-clock asserts in-process), kills it after :data:`WALL_LIMIT_S` (a hang is a
failure), and caps its address space so a runaway allocation fails fast instead of taking the
machine. Hostile files are generated in the case's temporary folder at test time.

Outcomes: ``error`` – the project's own error class with a message naming the problem;
``bounded`` – the input works, at a bounded cost (e.g. a 1×20,000 PNG predicted in < 400 MB);
``partial`` – several inputs, one bad: the good results are kept and the exit status says so;
``warned`` – it works and warns by name. ``python tests/test_hostile.py --report`` prints the table.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve()
#: A case still running after this many seconds is killed and fails (a hang).
WALL_LIMIT_S = 300.0
#: Address space a case may add to its parent's, in bytes (a runaway allocation fails with MemoryError).
ADDRESS_SPACE_HEADROOM = 3 * 2**30


@dataclass(frozen=True)
class Case:
    """One kind of hostile input: what it is, what it must give, and what it may cost."""

    name: str
    area: str  # images, checkpoints, models, datasets, options, cli, results, uploads
    outcome: str  # error, bounded, partial, warned
    expect: str  # the exception class name; "" when it must not raise
    match: str  # regex searched in the message (or the returned text / warnings)
    mem_mb: int
    cpu_s: float
    build: Callable[[Path], Any]
    xfail: str = ""  # owner and reason, while another module still lacks the bound


CASES: dict[str, Case] = {}


def case(area: str, outcome: str, expect: str, match: str, *, mem_mb: int = 250, cpu_s: float = 10.0,
         xfail: str = "") -> Callable[[Callable[[Path], Any]], Callable[[Path], Any]]:
    """Register a case; the function builds the hostile input in ``tmp`` and feeds it to the entry point."""

    def register(build: Callable[[Path], Any]) -> Callable[[Path], Any]:
        CASES[build.__name__] = Case(build.__name__, area, outcome, expect, match, mem_mb, cpu_s, build, xfail)
        return build

    return register


# ------------------------------------------------------------------------------------------- builders
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, *, rows: bool = True, extra: bytes = b"") -> bytes:
    """A grayscale 8-bit PNG of ``width``×``height`` zeros (tiny: the rows compress to almost nothing)."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    raw = zlib.compress(b"\0" * ((width + 1) * height), 9) if rows else b""
    return b"\x89PNG\r\n\x1a\n" + header + extra + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")


def _tiff_header_only(width: int, height: int) -> bytes:
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 8),
               (277, 3, 1), (278, 4, height), (279, 4, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        for tag, kind, value in entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 24) + b"\0" * 16 + ifd


def _tiny_module(outputs: int = 3) -> Any:
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, outputs))


def _good_png(tmp: Path, name: str = "good.png") -> str:
    from PIL import Image

    path = tmp / name
    Image.new("RGB", (40, 30), (200, 30, 30)).save(path)
    return str(path)


def _zip_bomb(path: Path, inflated_mib: int) -> None:
    """A torch checkpoint whose one storage entry is ``inflated_mib`` MiB of deflated zeros."""
    import torch

    torch.save({"w": torch.zeros(8)}, path.with_suffix(".small"))
    chunk = b"\0" * 2**20
    with zipfile.ZipFile(path.with_suffix(".small")) as small, zipfile.ZipFile(path, "w") as bomb:
        for info in small.infolist():
            if info.filename.endswith("data/0"):
                entry = zipfile.ZipInfo(info.filename)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with bomb.open(entry, "w", force_zip64=True) as handle:
                    for _ in range(inflated_mib):
                        handle.write(chunk)
            else:
                bomb.writestr(info, small.read(info.filename))


def _cli(argv: list[str]) -> str:
    """Run the console script's main() in this (child) process; its exit status, stdout and stderr."""
    from explainer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return f"rc={rc}\nSTDOUT\n{out.getvalue()}\nSTDERR\n{err.getvalue()}"


def _load_image(source: Any) -> Any:
    from explainer import load_image

    return load_image(source)


# --------------------------------------------------------------------------------------------- images
@case("images", "error", "InputError", r"too large \(10,000,000,000 pixels")
def png_header_claims_10_gigapixels(tmp: Path) -> Any:
    return _load_image(_png(100_000, 100_000, rows=False))


@case("images", "error", "InputError", r"is a device, not a regular file")
def dev_zero_as_image(tmp: Path) -> Any:
    return _load_image("/dev/zero")


@case("images", "error", "InputError", r"is a named pipe")
def named_pipe_as_image(tmp: Path) -> Any:
    os.mkfifo(tmp / "pipe.png")
    return _load_image(tmp / "pipe.png")


@case("images", "error", "InputError", r"is a folder")
def folder_as_image(tmp: Path) -> Any:
    return _load_image(tmp)


@case("images", "error", "InputError", r"Too many levels of symbolic links|symbolic")
def symlink_loop_as_image(tmp: Path) -> Any:
    (tmp / "loop.png").symlink_to(tmp / "loop.png")
    return _load_image(tmp / "loop.png")


@case("images", "error", "InputError", r"MiB; the limit is 25 MiB")
def sparse_file_over_the_size_cap(tmp: Path) -> Any:
    with open(tmp / "huge.png", "wb") as handle:
        handle.truncate(26 * 2**20)  # sparse: no disk used
    return _load_image(tmp / "huge.png")


@case("images", "error", "InputError", r"corrupt or truncated.*EOF")
def ppm_with_only_a_magic_number(tmp: Path) -> Any:
    return _load_image(b"P6\n")


@case("images", "error", "InputError", r"corrupt or truncated.*(Too Large|too large|Decompressed)")
def png_text_chunk_inflates_past_the_limit(tmp: Path) -> Any:
    bomb = _chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"\0" * 8 * 2**20, 9))
    return _load_image(_png(4, 4, extra=bomb))


@case("images", "error", "InputError", r"corrupt or truncated|not an image")
def png_cut_inside_a_text_chunk(tmp: Path) -> Any:
    data = _png(4, 4, extra=_chunk(b"tEXt", b"comment\0" + b"x" * 1000))
    return _load_image(data[: data.index(b"tEXt") + 40])


@case("images", "error", "InputError", r"corrupt or truncated")
def png_cut_inside_the_pixels(tmp: Path) -> Any:
    from PIL import Image

    buffer = io.BytesIO()
    Image.frombytes("L", (64, 64), os.urandom(64 * 64)).save(buffer, format="PNG")
    return _load_image(buffer.getvalue()[:600])


@case("images", "error", "InputError", r"empty \(0 bytes\)")
def empty_bytes(tmp: Path) -> Any:
    return _load_image(b"")


@case("images", "error", "InputError", r"too large \(4,294,836,225 pixels")
def gif_with_a_huge_logical_screen(tmp: Path) -> Any:
    return _load_image(b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0\0\0" + b",\0\0\0\0\1\0\1\0\0\2\2D\1\0;")


@case("images", "error", "InputError", r"too large \(10,000,000,000 pixels")
def tiff_header_claims_10_gigapixels(tmp: Path) -> Any:
    return _load_image(_tiff_header_only(100_000, 100_000))


@case("images", "error", "InputError", r"not an image file that can be read")
def eps_is_not_handed_to_ghostscript(tmp: Path) -> Any:
    return _load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")


@case("images", "bounded", "", r"^RGB \(16, 16\)$")
def ycbcr_tiff_written_by_pillow_loads(tmp: Path) -> Any:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).convert("YCbCr").save(buffer, format="TIFF")
    image = _load_image(buffer.getvalue())
    assert abs(image.getpixel((3, 3))[1] - 200) < 6, image.getpixel((3, 3))
    return f"{image.mode} {image.size}"


@case("images", "error", "InputError", r"dtype object")
def array_of_python_objects(tmp: Path) -> Any:
    import numpy as np

    return _load_image(np.array([[None, 1], [2, 3]], dtype=object))


@case("images", "error", "InputError", r"dtype complex")
def array_of_complex_numbers(tmp: Path) -> Any:
    import numpy as np

    return _load_image(np.zeros((4, 4), dtype=np.complex64))


@case("images", "error", "InputError", r"too large \(100000×100000")
def broadcast_array_of_10_gigapixels(tmp: Path) -> Any:
    import numpy as np

    return _load_image(np.broadcast_to(np.uint8(0), (100_000, 100_000)))  # no memory behind it


@case("images", "error", "InputError", r"NaN or infinite")
def float_array_with_infinity(tmp: Path) -> Any:
    import numpy as np

    return _load_image(np.full((4, 4, 3), np.inf, dtype=np.float32))


@case("images", "error", "InputError", r"outside 0–255")
def int64_array_with_huge_values(tmp: Path) -> Any:
    import numpy as np

    return _load_image(np.full((4, 4), 2**40, dtype=np.int64))


@case("images", "bounded", "", r"^\(1, 3, 224, 224\)$", mem_mb=150)
def png_1_by_20000_resized_for_a_model(tmp: Path) -> Any:
    from explainer import Classifier

    classifier = Classifier.from_module(_tiny_module(), labels=["a", "b", "c"], input_size=224)
    return str(tuple(classifier.to_pixels(_load_image(_png(1, 20_000))).shape))


@case("images", "bounded", "", r"^\(1, 3, 224, 224\)$", mem_mb=150)
def png_40000_by_1_resized_for_a_model(tmp: Path) -> Any:
    from explainer import Classifier

    classifier = Classifier.from_module(_tiny_module(), labels=["a", "b", "c"], input_size=224)
    return str(tuple(classifier.to_pixels(_load_image(_png(40_000, 1))).shape))


# ---------------------------------------------------------------------------------------- checkpoints
def _load_model(source: Any, **options: Any) -> Any:
    from explainer import load_model

    return load_model(source, device="cpu", **options)


@case("checkpoints", "error", "ModelLoadError", r"declares 1,024\.0 MiB.*zip bomb", cpu_s=20)
def pt_whose_storage_inflates_to_1_gib(tmp: Path) -> Any:
    _zip_bomb(tmp / "bomb.pt", 1024)
    return _load_model(tmp / "bomb.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"not a readable checkpoint.*record size")
def pt_pickle_declares_a_16_gib_storage(tmp: Path) -> Any:
    import torch

    torch.save({"w": torch.zeros(1000)}, tmp / "small.pt")
    with zipfile.ZipFile(tmp / "small.pt") as small, zipfile.ZipFile(tmp / "numel.pt", "w") as patched:
        for info in small.infolist():
            data = small.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"M\xe8\x03", b"J" + struct.pack("<i", 2**31 - 1))
            patched.writestr(info.filename, data)
    return _load_model(tmp / "numel.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"legacy \(pre-1\.6\) format")
def pt_in_the_legacy_format(tmp: Path) -> Any:
    import torch

    torch.save({"w": torch.zeros(3)}, tmp / "legacy.pt", _use_new_zipfile_serialization=False)
    return _load_model(tmp / "legacy.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"pickled Python objects.*never|pickled Python objects")
def pt_whose_pickle_runs_code(tmp: Path) -> Any:
    import torch

    marker = tmp / "ran"

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    torch.save({"w": Evil()}, tmp / "evil.pt")
    try:
        return _load_model(tmp / "evil.pt", arch="resnet18")
    finally:
        assert not marker.exists(), "the pickled code ran"


@case("checkpoints", "error", "ModelLoadError", r"keys that are not parameter names \(1\)")
def pt_with_integer_keys(tmp: Path) -> Any:
    import torch

    torch.save({1: torch.zeros(3)}, tmp / "keys.pt")
    return _load_model(tmp / "keys.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"as integers or booleans.*torch\.int32", mem_mb=250)
def pt_with_int32_weights(tmp: Path) -> Any:
    import torch

    state = _load_model("test_resnet", pretrained=False, num_classes=3).module.state_dict()
    torch.save({k: v.to(torch.int32) if v.is_floating_point() else v for k, v in state.items()}, tmp / "int.pt")
    return _load_model(tmp / "int.pt", arch="test_resnet")


@case("checkpoints", "error", "ModelLoadError", r"NaN or infinite weights in 1 tensor\(s\): fc\.weight", mem_mb=250)
def pt_with_a_nan_weight(tmp: Path) -> Any:
    import torch

    state = _load_model("test_resnet", pretrained=False, num_classes=3).module.state_dict()
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, tmp / "nan.pt")
    return _load_model(tmp / "nan.pt", arch="test_resnet")


@case("checkpoints", "error", "ModelLoadError", r"1,000,000 rows; at most 100,000 classes")
def pt_head_claims_a_million_classes(tmp: Path) -> Any:
    import torch

    torch.save({"fc.weight": torch.zeros(1, 512).expand(1_000_000, 512)}, tmp / "head.pt")  # 2 KB on disk
    return _load_model(tmp / "head.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"header claims 1,099,511,627,776 bytes")
def safetensors_header_larger_than_the_file(tmp: Path) -> Any:
    (tmp / "w.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    return _load_model(tmp / "w.safetensors", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"points outside the file")
def safetensors_tensor_points_past_the_end(tmp: Path) -> Any:
    header = json.dumps({"fc.weight": {"dtype": "F32", "shape": [2**20, 2**10], "data_offsets": [0, 2**32]}}).encode()
    (tmp / "w.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    return _load_model(tmp / "w.safetensors", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"header is not JSON")
def safetensors_header_is_not_json(tmp: Path) -> Any:
    (tmp / "w.safetensors").write_bytes(struct.pack("<Q", 5) + b"{oops" + b"\0" * 8)
    return _load_model(tmp / "w.safetensors", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"is a device, not a regular file")
def dev_zero_as_checkpoint(tmp: Path) -> Any:
    return _load_model("/dev/zero", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"is a named pipe")
def named_pipe_as_checkpoint(tmp: Path) -> Any:
    os.mkfifo(tmp / "pipe.pt")
    return _load_model(tmp / "pipe.pt", arch="resnet18")


@case("checkpoints", "error", "ModelLoadError", r"neither a safetensors file nor a PyTorch checkpoint")
def empty_checkpoint_file(tmp: Path) -> Any:
    (tmp / "empty.pt").write_bytes(b"")
    return _load_model(tmp / "empty.pt", arch="resnet18")


# --------------------------------------------------------------------------------------------- models
@case("models", "error", "ModelLoadError", r"does not behave as a classifier.*tuple")
def module_that_returns_a_tuple(tmp: Path) -> Any:
    from torch import nn

    class Pair(nn.Module):
        def forward(self, x: Any) -> tuple:
            return x.mean((2, 3)), x

    return _load_model(Pair())


@case("models", "error", "ModelLoadError", r"meta device")
def module_on_the_meta_device(tmp: Path) -> Any:
    return _load_model(_tiny_module().to("meta"))


@case("models", "error", "InputError", r"2 labels given but the module returns 3 outputs")
def fewer_labels_than_outputs(tmp: Path) -> Any:
    return _load_model(_tiny_module(), labels=["a", "b"])


@case("models", "error", "InputError", r"mps")
def device_mps_without_mps(tmp: Path) -> Any:
    from explainer import load_model

    return load_model(_tiny_module(), device="mps")


@case("models", "warned", "", r"NaN or infinite values in 1 tensor\(s\): 4\.weight")
def module_with_an_infinite_weight_warns(tmp: Path) -> Any:
    module = _tiny_module()
    module[4].weight.data[0, 0] = float("inf")
    return _load_model(module)


@case("models", "error", "InputError", r"pretrained must be True or False")
def pretrained_given_as_an_integer(tmp: Path) -> Any:
    return _load_model("resnet18", pretrained=1)


@case("models", "error", "InputError", r"weights_fingerprint needs an nn\.Module")
def fingerprint_of_a_non_module(tmp: Path) -> Any:
    from explainer.models.sources import weights_fingerprint

    return weights_fingerprint("resnet18")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- datasets
def _load_dataset(name: Any, **options: Any) -> Any:
    from explainer import load_dataset

    return load_dataset(name, **options)


@case("datasets", "bounded", "", r"^6 images, 0 shared$")
def imagefolder_with_a_symlink_loop_and_links(tmp: Path) -> Any:
    from PIL import Image

    for label, name in enumerate(("ants", "bees")):
        (tmp / name).mkdir()
        for i in range(3):
            Image.new("RGB", (20, 20), (label * 100 + i * 10, 50, 50)).save(tmp / name / f"{i}.png")
    (tmp / "ants" / "loop").symlink_to(tmp / "ants")
    (tmp / "bees" / "ants_again").symlink_to(tmp / "ants")
    os.link(tmp / "ants" / "0.png", tmp / "ants" / "hard.png")
    (tmp / "ants" / "soft.png").symlink_to(tmp / "ants" / "1.png")
    data = _load_dataset(f"imagefolder:{tmp}", image_size=8, test_fraction=0.5)
    train = {tuple(x.flatten().tolist()) for x in data.x_train}
    shared = len(train & {tuple(x.flatten().tolist()) for x in data.x_test})
    return f"{len(data.y_train) + len(data.y_test)} images, {shared} shared"


@case("datasets", "error", "DatasetError", r"holds no image files|more than 5,000 images|entries", cpu_s=20)
def imagefolder_of_the_whole_filesystem(tmp: Path) -> Any:
    return _load_dataset("imagefolder:/")


@case("datasets", "error", "InputError", r"dataset name must be a string")
def dataset_name_none(tmp: Path) -> Any:
    return _load_dataset(None)


@case("datasets", "error", "InputError", r"test_fraction must be a number")
def split_fraction_given_as_text(tmp: Path) -> Any:
    return _load_dataset("digits", test_fraction="x")


@case("datasets", "error", "InputError", r"n_train must be from 1")
def negative_n_train(tmp: Path) -> Any:
    return _load_dataset("known_answer", n_train=-1)


@case("datasets", "error", "InputError", r"image_size must be from 8")
def image_size_zero(tmp: Path) -> Any:
    return _load_dataset(f"imagefolder:{tmp}", image_size=0)


@case("datasets", "error", "InputError", r"size must be from 16 to 1,024, got 20,000")
def known_answer_images_of_20000_pixels(tmp: Path) -> Any:
    return _load_dataset("known_answer", size=20_000)


@case("datasets", "error", "InputError", r"would need .* GiB")
def known_answer_that_needs_terabytes(tmp: Path) -> Any:
    return _load_dataset("known_answer", n_train=10_000_000, size=1024)


@case("datasets", "error", "InputError", r"noise must be between 0 and 0\.5, got inf")
def toy_noise_infinite(tmp: Path) -> Any:
    return _load_dataset("spiral", noise=float("inf"))


@case("datasets", "error", "InputError", r"n must be a whole number")
def toy_count_given_as_a_boolean(tmp: Path) -> Any:
    return _load_dataset("moons", n=True)


# -------------------------------------------------------------------------------------------- options
def _tiny_classifier() -> Any:
    from explainer import Classifier

    return Classifier.from_module(_tiny_module(), labels=["a", "b", "c"], input_size=32)


@case("options", "error", "InputError", r"time budget", mem_mb=700, cpu_s=30)
def integrated_gradients_with_200000_steps(tmp: Path) -> Any:
    from explainer import explain, load_model

    return explain(load_model(device="cpu"), _good_png(tmp), method="integrated_gradients", n_steps=200_000)


@case("options", "error", "InputError", r"window", xfail="")
def occlusion_window_true(tmp: Path) -> Any:
    from explainer import explain

    return explain(_tiny_classifier(), _good_png(tmp), method="occlusion", window=True)


@case("options", "error", "InputError", r"noise|finite|inf")
def smoothgrad_infinite_noise(tmp: Path) -> Any:
    from explainer import explain

    return explain(_tiny_classifier(), _good_png(tmp), method="smoothgrad", noise=float("inf"))


@case("options", "error", "InputError", r"steps")
def faithfulness_with_ten_million_steps(tmp: Path) -> Any:
    from explainer import check_faithfulness, explain

    classifier = _tiny_classifier()
    explanation = explain(classifier, _good_png(tmp), method="saliency")
    return check_faithfulness(classifier, explanation, steps=10**7)


# ------------------------------------------------------------------------------------------------ cli
@case("cli", "partial", "", r"rc=1(.|\n)*bad\.png is not an image(.|\n)*2 of 4 result", mem_mb=450, cpu_s=30)
def predict_two_good_two_bad(tmp: Path) -> Any:
    (tmp / "bad.png").write_bytes(b"junk")
    out = _cli(["predict", _good_png(tmp), str(tmp / "bad.png"), "/dev/zero", _good_png(tmp, "b.png"),
                "--json", "--device", "cpu"])
    rows = json.loads(out.split("STDOUT\n", 1)[1].split("\nSTDERR", 1)[0])
    assert [("error" in row) for row in rows] == [False, True, True, False], rows
    return out


@case("cli", "bounded", "", r"rc=0", mem_mb=450, cpu_s=30)
def predict_a_1_by_20000_png(tmp: Path) -> Any:
    (tmp / "strip.png").write_bytes(_png(1, 20_000))
    return _cli(["predict", str(tmp / "strip.png"), "--json", "--device", "cpu"])


@case("cli", "partial", "", r"rc=1(.|\n)*saliency(.|\n)*not an image", mem_mb=500, cpu_s=40)
def explain_one_good_one_bad(tmp: Path) -> Any:
    (tmp / "bad.png").write_bytes(b"junk")
    return _cli(["explain", _good_png(tmp), str(tmp / "bad.png"), "--method", "saliency", "--no-png",
                 "--out", str(tmp / "out"), "--json", "--device", "cpu"])


@case("cli", "error", "", r"rc=2(.|\n)*is a file, not a folder")
def explain_out_is_a_file(tmp: Path) -> Any:
    (tmp / "taken").write_text("x")
    return _cli(["explain", _good_png(tmp), "--out", str(tmp / "taken"), "--no-png"])


@case("cli", "error", "", r"rc=2(.|\n)*Cannot write to --out")
def explain_out_is_not_writable(tmp: Path) -> Any:
    return _cli(["explain", _good_png(tmp), "--out", "/proc/explainer-out", "--no-png"])


@case("cli", "error", "", r"rc=2(.|\n)*--random-draws must be from 0 to 100")
def ablate_with_100000_random_draws(tmp: Path) -> Any:
    return _cli(["ablate", _good_png(tmp), "--random-draws", "100000"])


@case("cli", "error", "", r"rc=2(.|\n)*--top must be at least 1")
def ablate_top_minus_one(tmp: Path) -> Any:
    return _cli(["ablate", _good_png(tmp), "--top", "-1"])


@case("cli", "error", "", r"rc=2(.|\n)*--top must be at least 1")
def predict_top_zero(tmp: Path) -> Any:
    return _cli(["predict", _good_png(tmp), "--top", "0"])


@case("cli", "error", "", r"rc=2(.|\n)*mps")
def predict_on_device_mps(tmp: Path) -> Any:
    return _cli(["predict", _good_png(tmp), "--device", "mps"])


@case("cli", "bounded", "", r"^strict JSON: null_reasons=\{'p': 'not finite \(nan\)'\}$")
def json_output_never_holds_nan(tmp: Path) -> Any:
    from explainer.cli import print_json

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_json([{"p": float("nan"), "q": 1.0}])
    row = json.loads(buffer.getvalue(), parse_constant=lambda token: pytest.fail(f"JSON holds {token}"))[0]
    return f"strict JSON: null_reasons={row['null_reasons']}"


# -------------------------------------------------------------------------------------- results files
def _results_worker() -> Callable[[dict], dict]:
    return lambda unit: {"value": unit["i"] * 2}


@case("results", "bounded", "", r"^read only: 1 row, image_size 20000$")
def results_file_whose_config_asks_for_20000_pixels(tmp: Path) -> Any:
    from explainer.run import read_results

    path = tmp / "hostile.jsonl"
    header = {"format": "explainer-results", "version": 1,
              "config": {"image_size": 20000, "steps": 10**8, "dataset": "imagefolder:/"}}
    path.write_text(json.dumps(header) + "\n" + json.dumps({"i": 0, "value": 0}) + "\n")
    config, rows = read_results(path)
    return f"read only: {len(rows)} row, image_size {config['image_size']}"


@case("results", "error", "InputError", r"not a regular file|no such results file")
def results_file_that_is_dev_zero(tmp: Path) -> Any:
    from explainer.run import read_results

    return read_results("/dev/zero")


@case("results", "warned", "", r"last line was cut")
def results_file_with_a_cut_last_line_is_resumed(tmp: Path) -> Any:
    from explainer.run import run_units

    path = tmp / "run.jsonl"
    units = [{"i": i} for i in range(3)]
    run_units(units, _results_worker, out=path, config={"k": 1})
    text = path.read_text()
    path.write_text(text[: text.rstrip("\n").rfind("\n") + 8])  # cut the last row mid-line
    rows = run_units(units, _results_worker, out=path, config={"k": 1})
    assert [row["value"] for row in rows] == [0, 2, 4], rows
    return rows


@case("results", "error", "InputError", r"k")
def results_file_resumed_with_another_config(tmp: Path) -> Any:
    from explainer.run import run_units

    path = tmp / "run.jsonl"
    run_units([{"i": 0}], _results_worker, out=path, config={"k": 1})
    return run_units([{"i": 0}], _results_worker, out=path, config={"k": 2})


# ------------------------------------------------------------------------------------ dashboard uploads
@case("uploads", "error", "InputError", r"upload\.png is corrupt or truncated")
def uploaded_image_with_a_text_bomb(tmp: Path) -> Any:
    from explainer import load_image

    bomb = _chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"\0" * 8 * 2**20, 9))
    return load_image(_png(4, 4, extra=bomb), name="upload.png")


@case("uploads", "error", "ModelLoadError", r"the uploaded checkpoint .* declares 512\.0 MiB", cpu_s=20)
def uploaded_checkpoint_zip_bomb(tmp: Path) -> Any:
    _zip_bomb(tmp / "bomb.pt", 512)
    return _load_model((tmp / "bomb.pt").read_bytes(), arch="resnet18")


@case("uploads", "bounded", "", r"^upload loads: 3 classes, sha256:[0-9a-f]{64} equal$", mem_mb=250)
def uploaded_checkpoint_bytes_need_no_temporary_file(tmp: Path) -> Any:
    import safetensors.torch

    from explainer.models.sources import weights_fingerprint

    original = _load_model("test_resnet", pretrained=False, num_classes=3)
    data = safetensors.torch.save(original.module.state_dict())
    loaded = _load_model(data, arch="test_resnet")
    same = weights_fingerprint(loaded) == weights_fingerprint(original)
    return f"upload loads: {loaded.num_classes} classes, {weights_fingerprint(loaded)} {'equal' if same else 'DIFFER'}"


@case("uploads", "error", "ModelLoadError", r"neither a safetensors file nor a PyTorch checkpoint")
def uploaded_checkpoint_that_is_an_image(tmp: Path) -> Any:
    return _load_model(_png(4, 4), arch="resnet18")


#: Error cases whose input would cost gigabytes or hours, or block forever, if it were not refused first.
COSTLY = frozenset({
    "png_header_claims_10_gigapixels", "dev_zero_as_image", "named_pipe_as_image", "sparse_file_over_the_size_cap",
    "png_text_chunk_inflates_past_the_limit", "gif_with_a_huge_logical_screen", "tiff_header_claims_10_gigapixels",
    "broadcast_array_of_10_gigapixels", "pt_whose_storage_inflates_to_1_gib", "pt_pickle_declares_a_16_gib_storage",
    "pt_in_the_legacy_format", "pt_head_claims_a_million_classes", "safetensors_header_larger_than_the_file",
    "safetensors_tensor_points_past_the_end", "dev_zero_as_checkpoint", "named_pipe_as_checkpoint",
    "imagefolder_of_the_whole_filesystem", "known_answer_images_of_20000_pixels", "known_answer_that_needs_terabytes",
    "integrated_gradients_with_200000_steps", "faithfulness_with_ten_million_steps", "ablate_with_100000_random_draws",
    "results_file_that_is_dev_zero", "uploaded_image_with_a_text_bomb", "uploaded_checkpoint_zip_bomb",
})


# ---------------------------------------------------------------------- calibration of the harness itself
def _allocate_300_mb(tmp: Path) -> str:
    block = bytearray(300 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
    return str(len(block))


def _spin_one_cpu_second(tmp: Path) -> str:
    start = time.process_time()
    while time.process_time() - start < 1.0:
        pass
    return "spun"


CALIBRATION = {
    "_allocate_300_mb": Case("_allocate_300_mb", "images", "bounded", "", "", 0, 0, _allocate_300_mb),
    "_spin_one_cpu_second": Case("_spin_one_cpu_second", "images", "bounded", "", "", 0, 0, _spin_one_cpu_second),
}


# ------------------------------------------------------------------------------------- child harness
def _child(case: Case, tmp: Path) -> dict[str, Any]:
    import warnings

    from explainer.errors import ExplainerError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = case.build(tmp)
            result = {"error": "", "message": value if isinstance(value, str) else repr(value)[:500]}
        except BaseException as exc:  # noqa: BLE001 - the harness reports whatever escaped
            result = {"error": type(exc).__name__, "message": str(exc), "project": isinstance(exc, ExplainerError)}
    result["warnings"] = [str(w.message) for w in caught][:20]
    result["message"] = str(result["message"])[:4000]
    return result


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_group(cases: list[Case], folder: Path) -> dict[str, dict[str, Any]]:
    """Run each case in a forked child; its result with peak memory (MB over the parent) and CPU seconds."""
    results: dict[str, dict[str, Any]] = {}
    for item in cases:
        tmp = folder / item.name
        tmp.mkdir(parents=True, exist_ok=True)
        baseline_kb = _status_kb("VmRSS")
        limit = _status_kb("VmSize") * 1024 + ADDRESS_SPACE_HEADROOM
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: bounded, runs the case, reports through the pipe
            os.close(read_end)
            start_kb = _status_kb("VmRSS")  # what this child has resident before the case (shared pages count)
            try:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                result = _child(item, tmp)
            except BaseException as exc:  # noqa: BLE001
                result = {"error": f"harness {type(exc).__name__}", "message": str(exc)[:2000]}
            result["grew_mb"] = max(0, _status_kb("VmHWM") - start_kb) / 1024
            os.write(write_end, json.dumps(result).encode()[:60_000])
            os._exit(0)
        os.close(write_end)
        start, timed_out = time.monotonic(), False
        while True:
            done, _, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > WALL_LIMIT_S:
                os.kill(pid, signal.SIGKILL)
                _, _, usage = os.wait4(pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        with os.fdopen(read_end, "rb") as handle:
            raw = handle.read()
        result = json.loads(raw) if raw else {"error": "no result (killed?)", "message": ""}
        # the child's own peak over its start (VmHWM − VmRSS), or, if it died, wait4's peak over the parent's RSS
        fallback = max(0, usage.ru_maxrss - baseline_kb) / 1024
        result.update(timed_out=timed_out, peak_mb=max(result.get("grew_mb", 0), fallback),
                      cpu_s=usage.ru_utime + usage.ru_stime)
        results[item.name] = result
    return results


def _main(argv: list[str]) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)
    # imported once here and shared by every forked case, so a case's cost is what its input adds
    import captum.attr  # noqa: F401
    import safetensors.torch  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import timm  # noqa: F401

    import explainer
    import explainer.cli
    import explainer.run  # noqa: F401

    explainer.cli.build_parser()  # imports every subcommand (plotly, the registry, ...)
    explainer.load_model(device="cpu")  # warms the bundled weights and timm's registry

    areas, folder = argv[0].split(","), Path(argv[1])
    chosen = [c for c in CASES.values() if c.area in areas]
    results = run_group(chosen + (list(CALIBRATION.values()) if "images" in areas else []), folder)
    (folder / "results.json").write_text(json.dumps(results, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------- tests
GROUPS = ("images,datasets,results", "checkpoints,models,uploads", "options", "cli")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case's result: the groups run as concurrent helper processes (each forks per case)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    folders = [tmp_path_factory.mktemp(f"hostile{i}") for i in range(len(GROUPS))]
    children = [subprocess.Popen([sys.executable, str(HERE), group, str(folder)], env=env, cwd=HERE.parents[1])
                for group, folder in zip(GROUPS, folders)]
    for child in children:
        child.wait(timeout=900)
    results: dict[str, dict[str, Any]] = {}
    for folder in folders:
        if (folder / "results.json").exists():
            results.update(json.loads((folder / "results.json").read_text()))
    return results


def test_corpus_covers_at_least_40_kinds_in_every_area() -> None:
    assert COSTLY <= set(CASES)
    areas = {c.area for c in CASES.values()}
    assert len(CASES) >= 40
    assert {"images", "checkpoints", "datasets", "options", "cli", "uploads"} <= areas
    assert all(c.area in ",".join(GROUPS).split(",") for c in CASES.values())


def test_harness_measures_memory_and_cpu_of_each_case(corpus: dict[str, dict[str, Any]]) -> None:
    assert 280 <= corpus["_allocate_300_mb"]["peak_mb"] <= 400, corpus["_allocate_300_mb"]
    assert corpus["_spin_one_cpu_second"]["cpu_s"] >= 0.9, corpus["_spin_one_cpu_second"]
    assert corpus["_spin_one_cpu_second"]["peak_mb"] < 50


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_case(name: str, corpus: dict[str, dict[str, Any]], request: pytest.FixtureRequest) -> None:
    item = CASES[name]
    if item.xfail:
        request.applymarker(pytest.mark.xfail(reason=item.xfail, strict=False))
    result = corpus.get(name)
    assert result is not None, f"{name}: the helper process gave no result"
    assert not result["timed_out"], f"{name} ran past {WALL_LIMIT_S} s (a hang)"
    text = "\n".join(result.get("warnings", [])) if item.outcome == "warned" else result["message"]
    assert result["error"] == item.expect, f"{name}: expected {item.expect or 'no exception'}, got {result}"
    assert re.search(item.match, text), f"{name}: {text!r} does not match {item.match!r}"
    assert result["peak_mb"] <= item.mem_mb, f"{name} peaked at {result['peak_mb']:.0f} MB (bound {item.mem_mb})"
    assert result["cpu_s"] <= item.cpu_s, f"{name} used {result['cpu_s']:.1f} CPU s (bound {item.cpu_s})"


def _report(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'case':<52} {'area':<12} {'outcome':<8} {'result':<16} {'MB':>6} {'CPU s':>6}"]
    for name, item in CASES.items():
        result = results.get(name, {})
        lines.append(f"{name:<52} {item.area:<12} {item.outcome:<8} {(result.get('error') or 'ok')[:16]:<16} "
                     f"{result.get('peak_mb', float('nan')):6.0f} {result.get('cpu_s', float('nan')):6.1f}")
    counts = {o: sum(1 for c in CASES.values() if c.outcome == o) for o in ("error", "bounded", "partial", "warned")}
    costly = sum(1 for c in CASES.values() if c.name in COSTLY)
    passing = [(k, v) for k, v in results.items() if k in CASES and not CASES[k].xfail]
    worst = max(passing, key=lambda kv: kv[1].get("peak_mb", 0))
    lines.append(f"{len(CASES)} kinds: {counts}; {costly} of the errors refuse an input that would cost GBs or hours "
                 f"or block; worst peak of a passing case {worst[1]['peak_mb']:.0f} MB ({worst[0]}); "
                 f"xfail: {[k for k, c in CASES.items() if c.xfail]}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--report"]:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            everything: dict[str, dict[str, Any]] = {}
            for index, group in enumerate(GROUPS):
                folder = Path(scratch) / str(index)
                folder.mkdir()
                subprocess.run([sys.executable, str(HERE), group, str(folder)], check=True)
                everything.update(json.loads((folder / "results.json").read_text()))
            print(_report(everything))
        sys.exit(0)
    sys.exit(_main(sys.argv[1:]))


# ------------------------------------------------------------------------------------ the dashboard server
def _listening_addresses(port: int) -> list[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:
                found.append(address)
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # a real Streamlit start: ~5 s idle, 30 s on a loaded machine
def test_dashboard_serves_localhost_only_and_dies_with_its_command(tmp_path: Path) -> None:
    """A real `explainer dashboard`: it listens on 127.0.0.1 only, and SIGTERM to it ends the whole server."""
    port = _free_port()
    log = (tmp_path / "dashboard.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "explainer.cli", "dashboard", "--headless", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=HERE.parents[1])
    try:
        deadline = time.monotonic() + 120
        while not _listening_addresses(port) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        addresses = _listening_addresses(port)
        assert addresses, f"the dashboard never listened: {(tmp_path / 'dashboard.log').read_text()[-2000:]}"
        assert set(addresses) <= {"0100007F", "00000000000000000000000001000000"}, addresses  # 127.0.0.1 / ::1
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) is not None
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):  # nothing of its process group is left serving
            os.killpg(process.pid, 0)
        assert not _listening_addresses(port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_dashboard_command_binds_loopback_unless_told() -> None:
    from explainer.commands.dashboard import streamlit_command
    from explainer.errors import InputError

    default = streamlit_command("127.0.0.1", 8501, headless=True)
    assert default[default.index("--server.address") + 1] == "127.0.0.1"
    served = streamlit_command("0.0.0.0", 8502, headless=False)
    assert served[served.index("--server.address") + 1] == "0.0.0.0"
    with pytest.raises(InputError, match="--port must be from 1 to 65535"):
        streamlit_command("127.0.0.1", 0, headless=True)
