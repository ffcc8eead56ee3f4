"""Datasets behind one call: `load_dataset(name, ...)` returns train/test tensors with class names.

Options are type-strict (booleans are not counts, counts are not negative, noise is finite)
and sizes are bounded before anything is allocated (:data:`MAX_DATASET_BYTES`). Image folders
are walked without following a symlink into a loop, count each file once (by inode and by
content) and keep train and test disjoint. Whatever torchvision, scikit-learn or the
filesystem raise becomes a :class:`DatasetError` or :class:`InputError`.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainer.errors import DatasetError, InputError, describe_exception

TOY_SETS = ("circle", "xor", "gauss", "spiral", "moons")
IMAGE_SETS = ("digits", "textures", "known_answer", "mnist", "fashion_mnist", "cifar10")
TEXTURE_PHOTOS = ("brick", "grass", "gravel", "moon", "immunohistochemistry", "cell")
#: Largest dataset built in memory (all tensors together), in bytes.
MAX_DATASET_BYTES = 2 * 2**30
#: Most directory entries an image-folder walk visits before it gives up (``imagefolder:/`` stops here).
MAX_FOLDER_ENTRIES = 200_000
#: File endings read from image folders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass
class Dataset:
    """Train/test splits as tensors.

    Images are float32 ``(N, C, H, W)`` in [0, 1]; 2-D toy sets are float32 ``(N, 2)``.
    Labels are int64 ``(N,)``. ``masks_*`` (known_answer only) mark the pixels that decide
    the class, as bool ``(N, 1, H, W)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    masks_train: torch.Tensor | None = None
    masks_test: torch.Tensor | None = None
    description: str = ""
    #: What was planted (``planted`` only): an :class:`explainer.data.planted.PlantedTruth`.
    truth: Any = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return self.x_train.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 8, 8)`` or ``(2,)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )


def load_dataset(name: str, **options: Any) -> Dataset:
    """Load a dataset by name.

    * ``digits`` – scikit-learn's 8×8 handwritten digits (offline); ``test_fraction``, ``seed``.
    * ``textures`` – crops of six scikit-image texture photos; train crops from the top half of each
      photo, test crops from the bottom half (no leakage); ``crop_size``, ``train_per_class``,
      ``test_per_class``, ``seed``.
    * ``known_answer`` – synthetic images whose class is the quadrant of a small bright square
      (ground-truth mask given), plus a stripe that carries no label information; ``n_train``,
      ``n_test``, ``size``, ``seed``.
    * ``planted`` – synthetic colour images with a planted truth for every kind of explanation (a causal
      stripe object, a corner colour shortcut agreeing with the label in share ``shortcut`` of training
      images, ``mislabeled`` flipped labels, a distractor; ``dataset.truth``); ``n_train``, ``n_test``,
      ``size``, ``shortcut``, ``mislabeled``, ``noise``, ``seed``.
    * ``mnist``, ``fashion_mnist``, ``cifar10`` – torchvision; ``root``, ``download``, ``limit``.
    * ``imagefolder:PATH`` – one sub-folder per class (or ``train/`` and ``test/`` inside PATH);
      ``image_size``, ``test_fraction``, ``seed``.
    * ``circle``, ``xor``, ``gauss``, ``spiral``, ``moons`` – 2-D toy sets as in TensorFlow
      Playground; ``n``, ``noise`` (0–0.5), ``test_fraction``, ``seed``.
    """
    if not isinstance(name, str):
        raise InputError(f"A dataset name must be a string such as 'digits' or 'imagefolder:PATH', got {name!r}.")
    if name.startswith("imagefolder:"):
        return _guard(name, lambda: load_imagefolder(name.split(":", 1)[1], **options))
    loaders: dict[str, Callable[..., Dataset]] = {
        "digits": load_digits,
        "textures": load_textures,
        "known_answer": make_known_answer,
        "planted": _make_planted,
        "mnist": lambda **kw: load_torchvision_dataset("MNIST", **kw),
        "fashion_mnist": lambda **kw: load_torchvision_dataset("FashionMNIST", **kw),
        "cifar10": lambda **kw: load_torchvision_dataset("CIFAR10", **kw),
    }
    for toy in TOY_SETS:
        loaders[toy] = lambda _toy=toy, **kw: make_toy(_toy, **kw)
    if name not in loaders:
        raise DatasetError(
            f"Unknown dataset {name!r}. Choose one of: {', '.join(loaders)}, or 'imagefolder:PATH'."
        )
    return _guard(name, lambda: loaders[name](**options))


def _make_planted(**options: Any) -> Dataset:
    from explainer.data.planted import make_planted

    return make_planted(**options)


def _guard(name: str, load: Callable[[], Dataset]) -> Dataset:
    try:
        return load()
    except (InputError, DatasetError):
        raise
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise InputError(f"Dataset {name!r} does not take that option: {exc}. See help(load_dataset).") from None
        raise DatasetError(f"Could not load dataset {name!r} ({describe_exception(exc)}). Check its options.") from None
    except MemoryError:
        raise DatasetError(f"Dataset {name!r} needs more memory than is available; load fewer images.") from None
    except Exception as exc:  # torchvision, scikit-learn, scikit-image or the filesystem
        raise DatasetError(f"Could not load dataset {name!r} ({describe_exception(exc)}).") from None



def _count(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; booleans, floats and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}.")
    if not low <= int(value) <= high:
        raise InputError(f"{name} must be from {low:,} to {high:,}, got {int(value):,}.")
    return int(value)


def _real(name: str, value: object, low: float, high: float, *, open_ends: bool = False) -> float:
    """``value`` as a finite float in [low, high] (or (low, high)); booleans and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}.")
    number = float(value)
    inside = low < number < high if open_ends else low <= number <= high
    if not math.isfinite(number) or not inside:
        ends = f"between {low:g} and {high:g}" + (" (exclusive)" if open_ends else "")
        raise InputError(f"{name} must be {ends}, got {value!r}.")
    return number


def _check_bytes(name: str, count: int, per_item: int) -> None:
    total = count * per_item
    if total > MAX_DATASET_BYTES:
        raise InputError(
            f"{name} would need {total / 2**30:.1f} GiB ({count:,} examples × {per_item:,} bytes); the limit is "
            f"{MAX_DATASET_BYTES / 2**30:.0f} GiB. Ask for fewer or smaller examples."
        )


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    test_fraction = _real("test_fraction", test_fraction, 0.0, 1.0, open_ends=True)
    seed = _count("seed", seed, 0, 2**32 - 1)
    indices = np.arange(len(labels))
    train, test = train_test_split(indices, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8×8 digits, scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = _split_indices(bunch.target, test_fraction, seed)
    return Dataset(
        "digits", images[train], labels[train], images[test], labels[test],
        [str(i) for i in range(10)], description="scikit-learn 8×8 handwritten digits",
    )


def load_textures(crop_size: int = 64, train_per_class: int = 60, test_per_class: int = 40, seed: int = 0) -> Dataset:
    """Random RGB crops of six texture photos: train from the top half, test from the bottom half."""
    from skimage import data as skdata

    crop_size = _count("crop_size", crop_size, 8, 256)
    train_per_class = _count("train_per_class", train_per_class, 1, 100_000)
    test_per_class = _count("test_per_class", test_per_class, 1, 100_000)
    seed = _count("seed", seed, 0, 2**32 - 1)
    _check_bytes("textures", len(TEXTURE_PHOTOS) * (train_per_class + test_per_class), 3 * crop_size**2 * 4)
    rng = np.random.default_rng(seed)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for label, photo_name in enumerate(TEXTURE_PHOTOS):
        photo = np.asarray(getattr(skdata, photo_name)(), dtype=np.float32) / 255.0
        if photo.ndim == 2:
            photo = np.repeat(photo[..., None], 3, axis=2)
        half = photo.shape[0] // 2
        if half < crop_size or photo.shape[1] < crop_size:
            raise InputError(f"crop_size {crop_size} is larger than half of the {photo_name} photo ({half} px).")
        for split, rows, count in (("train", (0, half), train_per_class), ("test", (half, photo.shape[0]), test_per_class)):
            for _ in range(count):
                top = int(rng.integers(rows[0], rows[1] - crop_size + 1))
                left = int(rng.integers(0, photo.shape[1] - crop_size + 1))
                xs[split].append(photo[top : top + crop_size, left : left + crop_size])
                ys[split].append(label)

    def stack(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.from_numpy(np.stack(xs[split])).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(ys[split], dtype=torch.int64)

    x_train, y_train = stack("train")
    x_test, y_test = stack("test")
    return Dataset(
        "textures", x_train, y_train, x_test, y_test, list(TEXTURE_PHOTOS),
        description="crops of six scikit-image texture photos; train from top halves, test from bottom halves",
    )


def make_known_answer(n_train: int = 800, n_test: int = 200, size: int = 32, seed: int = 0) -> Dataset:
    """Synthetic images whose class (0–3) is the quadrant holding a small bright square.

    Every image also has a bright stripe at a random place that carries no label
    information, and mild noise. ``masks_*`` mark the square's pixels: a faithful
    attribution puts its mass there, not on the stripe.
    """
    n_train = _count("n_train", n_train, 1, 10_000_000)
    n_test = _count("n_test", n_test, 1, 10_000_000)
    size = _count("size", size, 16, 1024)
    seed = _count("seed", seed, 0, 2**32 - 1)
    _check_bytes("known_answer", n_train + n_test, 3 * size * size * 4 * 2 + size * size)  # float64 noise, then float32
    rng = np.random.default_rng(seed)
    square = max(3, size // 8)

    def make(count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images = rng.normal(0.15, 0.04, size=(count, 3, size, size)).astype(np.float32)
        masks = np.zeros((count, 1, size, size), dtype=bool)
        labels = rng.integers(0, 4, size=count)
        half = size // 2
        for i, label in enumerate(labels):
            row0, col0 = (label // 2) * half, (label % 2) * half
            top = int(rng.integers(row0 + 1, row0 + half - square - 1))
            left = int(rng.integers(col0 + 1, col0 + half - square - 1))
            color = rng.uniform(0.8, 1.0, size=3).astype(np.float32)
            images[i, :, top : top + square, left : left + square] = color[:, None, None]
            masks[i, 0, top : top + square, left : left + square] = True
            stripe_color = rng.uniform(0.6, 0.9, size=3).astype(np.float32)
            if rng.random() < 0.5:
                row = int(rng.integers(0, size - 2))
                images[i, :, row : row + 2, :] = np.where(masks[i, :, row : row + 2, :], images[i, :, row : row + 2, :], stripe_color[:, None, None])
            else:
                col = int(rng.integers(0, size - 2))
                images[i, :, :, col : col + 2] = np.where(masks[i, :, :, col : col + 2], images[i, :, :, col : col + 2], stripe_color[:, None, None])
        return (
            torch.from_numpy(np.clip(images, 0, 1)),
            torch.from_numpy(labels.astype(np.int64)),
            torch.from_numpy(masks),
        )

    x_train, y_train, m_train = make(n_train)
    x_test, y_test, m_test = make(n_test)
    return Dataset(
        "known_answer", x_train, y_train, x_test, y_test,
        ["top-left", "top-right", "bottom-left", "bottom-right"],
        masks_train=m_train, masks_test=m_test,
        description="class = quadrant of a small bright square; a random stripe is a distractor",
    )


def load_torchvision_dataset(
    kind: str, root: str | Path = "data", download: bool = False, limit: int | None = None
) -> Dataset:
    """MNIST, FashionMNIST or CIFAR10 through torchvision, from ``root`` (download only if asked)."""
    import torchvision

    if not isinstance(download, bool):
        raise InputError(f"download must be True or False, got {download!r}.")
    if limit is not None:
        limit = _count("limit", limit, 1, 10_000_000)
    if not isinstance(root, (str, Path)):
        raise InputError(f"root must be a folder path, got {root!r}.")
    dataset_class = getattr(torchvision.datasets, kind)
    root = Path(root).expanduser()
    try:
        train = dataset_class(str(root), train=True, download=download)
        test = dataset_class(str(root), train=False, download=download)
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "download" in str(exc).lower():
            raise DatasetError(
                f"{kind} files were not found under {root}. Pass download=True (needs a network), or copy the "
                f"extracted files into {root / kind / 'raw' if kind != 'CIFAR10' else root / 'cifar-10-batches-py'}."
            ) from None
        raise
    except OSError as exc:  # download attempted without a network
        raise DatasetError(f"Could not download {kind} into {root} ({exc}); you seem to be offline.") from None

    def tensors(split: Any) -> tuple[torch.Tensor, torch.Tensor]:
        data = split.data if isinstance(split.data, torch.Tensor) else torch.from_numpy(np.asarray(split.data))
        targets = torch.as_tensor(np.asarray(split.targets), dtype=torch.int64)
        if limit is not None:
            data, targets = data[:limit], targets[:limit]
        images = data.float().div(255.0)
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        return images.contiguous(), targets

    x_train, y_train = tensors(train)
    x_test, y_test = tensors(test)
    names = {"MNIST": "mnist", "FashionMNIST": "fashion_mnist", "CIFAR10": "cifar10"}
    return Dataset(names[kind], x_train, y_train, x_test, y_test, list(train.classes), description=f"torchvision {kind}")


def load_imagefolder(
    path: str | Path, image_size: int = 64, test_fraction: float = 0.25, seed: int = 0, max_images: int = 5000
) -> Dataset:
    """Images in class sub-folders (or ``train/`` and ``test/`` inside ``path``), resized and center-cropped.

    The walk follows symlinks but never into a folder it has already visited (no loops), reads
    each file once (hard links and symlinks to one file, and byte-identical copies, count
    once), refuses a folder with more than ``max_images`` images or :data:`MAX_FOLDER_ENTRIES`
    entries before decoding any, and keeps train and test disjoint (a test image that is also
    in train/ is dropped from train, with a warning). An unreadable image is an InputError naming it.
    """
    if not isinstance(path, (str, Path)):
        raise InputError(f"path must be a folder, got {path!r}.")
    image_size = _count("image_size", image_size, 8, 1024)
    max_images = _count("max_images", max_images, 1, 1_000_000)
    _check_bytes("the image folder", max_images, 3 * image_size * image_size * 4)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"Image folder {root} does not exist; expected one sub-folder per class.")
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    seen: set[tuple[int, int]] = set()  # (device, inode) of every file read, across train and test
    if (root / "train").is_dir() and test_dir is not None:
        test_files, test_labels, test_classes = _scan_classes(test_dir, max_images, seen)
        train_files, train_labels, classes = _scan_classes(root / "train", max_images, seen)
        if test_classes != classes:
            raise DatasetError(f"train/ and {test_dir.name}/ in {root} have different class folders.")
        x_test, y_test, test_hashes = _read_images(test_files, test_labels, image_size, set())
        x_train, y_train, _ = _read_images(train_files, train_labels, image_size, set(test_hashes), split="train")
    else:
        files, labels, classes = _scan_classes(root, max_images, seen)
        images, targets, _ = _read_images(files, labels, image_size, set())
        if len(targets) == 0 or torch.bincount(targets, minlength=len(classes)).min() < 2:
            raise DatasetError(f"Every class folder in {root} needs at least 2 distinct images to split train/test.")
        train, test = _split_indices(targets.numpy(), test_fraction, seed)
        x_train, y_train, x_test, y_test = images[train], targets[train], images[test], targets[test]
    return Dataset(f"imagefolder:{root}", x_train, y_train, x_test, y_test, classes, description=f"images from {root}")


def _scan_classes(folder: Path, max_images: int, seen: set[tuple[int, int]]) -> tuple[list[Path], list[int], list[str]]:
    """Image files per class sub-folder of ``folder``; each file once, no symlink loops, bounded."""
    try:
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as exc:
        raise DatasetError(f"Cannot list {folder}: {exc.strerror or exc}.") from None
    if not classes:
        raise DatasetError(f"{folder} has no class sub-folders; put each class's images in its own folder.")
    files: list[Path] = []
    labels: list[int] = []
    budget = [MAX_FOLDER_ENTRIES]
    for label, name in enumerate(classes):
        found = _walk_images(folder / name, set(), seen, budget)
        if not found:
            raise DatasetError(f"Class folder {folder / name} holds no image files ({', '.join(IMAGE_SUFFIXES[:5])}, ...).")
        files += found
        labels += [label] * len(found)
        if len(files) > max_images:
            raise DatasetError(f"{folder} holds more than {max_images:,} images (max_images=); pass a larger limit.")
    return files, labels, classes


def _walk_images(
    folder: Path, visited: set[tuple[int, int]], seen: set[tuple[int, int]], budget: list[int]
) -> list[Path]:
    try:
        info = os.stat(folder)
    except OSError:
        return []
    key = (info.st_dev, info.st_ino)
    if key in visited:  # a symlink back into a folder already walked: a loop or a second path to it
        return []
    visited.add(key)
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return []
    found: list[Path] = []
    for entry in entries:
        budget[0] -= 1
        if budget[0] < 0:
            raise DatasetError(
                f"The image folder walk passed {MAX_FOLDER_ENTRIES:,} entries at {folder}; point it at a "
                "smaller folder with one sub-folder per class."
            )
        try:
            entry_info = os.stat(entry.path)
        except OSError:  # a broken symlink
            continue
        if stat.S_ISDIR(entry_info.st_mode):
            found += _walk_images(Path(entry.path), visited, seen, budget)
        elif stat.S_ISREG(entry_info.st_mode) and entry.name.lower().endswith(IMAGE_SUFFIXES):
            file_key = (entry_info.st_dev, entry_info.st_ino)
            if file_key not in seen:  # hard links and symlinks to one file count once
                seen.add(file_key)
                found.append(Path(entry.path))
    return found


def _read_images(
    files: list[Path], labels: list[int], image_size: int, exclude: set[str], split: str = ""
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode, resize and crop; skip byte-identical copies (and ``exclude`` hashes); a bad file is an InputError."""
    from explainer.data.images import MAX_IMAGE_BYTES, load_image, read_regular_file, resize_and_crop

    tensors: list[torch.Tensor] = []
    targets: list[int] = []
    hashes: list[str] = []
    known: set[str] = set()
    overlap = 0
    for file, label in zip(files, labels):
        try:
            data = read_regular_file(file, limit=MAX_IMAGE_BYTES, what="image")
            digest = hashlib.sha256(data).hexdigest()
            if digest in known:
                continue
            if digest in exclude:
                overlap += 1
                continue
        except InputError as exc:
            raise InputError(f"{exc} Remove it from the folder or replace it.") from None
        image = resize_and_crop(load_image(data, name=str(file)), (image_size, image_size))
        known.add(digest)
        hashes.append(digest)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensors.append(torch.from_numpy(array).permute(2, 0, 1).contiguous())
        targets.append(label)
    if overlap:
        warnings.warn(f"Dropped {overlap} {split} image(s) that are also in the test split (train and test stay "
                      "disjoint).", RuntimeWarning, stacklevel=3)
    if not tensors:
        raise DatasetError(f"No readable images among {len(files)} file(s) in the folder.")
    return torch.stack(tensors), torch.tensor(targets, dtype=torch.int64), hashes


def make_toy(name: str, n: int = 400, noise: float = 0.1, test_fraction: float = 0.5, seed: int = 0) -> Dataset:
    """TensorFlow-Playground-style 2-D sets with two classes; ``noise`` in [0, 0.5]."""
    if name not in TOY_SETS:
        raise DatasetError(f"Unknown toy set {name!r}; choose one of {', '.join(TOY_SETS)}.")
    noise = _real("noise", noise, 0.0, 0.5)
    n = _count("n", n, 10, 10_000_000)
    seed = _count("seed", seed, 0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    half = n // 2
    if name == "circle":
        radius = 5.0
        r = np.concatenate([rng.uniform(0, radius * 0.5, half), rng.uniform(radius * 0.7, radius, n - half)])
        angle = rng.uniform(0, 2 * math.pi, n)
        points = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
        points += rng.uniform(-radius, radius, (n, 2)) * noise
        labels = np.concatenate([np.zeros(half), np.ones(n - half)]).astype(np.int64)
    elif name == "xor":
        points = rng.uniform(-5, 5, (n, 2))
        points += np.sign(points) * 0.3
        labels = (points[:, 0] * points[:, 1] < 0).astype(np.int64)
        points += rng.uniform(-5, 5, (n, 2)) * noise
    elif name == "gauss":
        variance = 0.5 + noise * 7.0
        points = np.concatenate([
            rng.normal(2, math.sqrt(variance), (half, 2)), rng.normal(-2, math.sqrt(variance), (n - half, 2)),
        ])
        labels = np.concatenate([np.zeros(half), np.ones(n - half)]).astype(np.int64)
    elif name == "spiral":
        parts = []
        for label, delta in ((0, 0.0), (1, math.pi)):
            count = half if label == 0 else n - half
            t = np.arange(count) / count * 1.75 * 2 * math.pi
            r = np.arange(count) / count * 5.0
            xy = np.stack([r * np.sin(t + delta), r * np.cos(t + delta)], axis=1)
            parts.append(xy + rng.uniform(-1, 1, (count, 2)) * noise * 2.5)
        points = np.concatenate(parts)
        labels = np.concatenate([np.zeros(half), np.ones(n - half)]).astype(np.int64)
    else:  # moons
        from sklearn.datasets import make_moons

        points, labels = make_moons(n_samples=n, noise=noise * 0.6, random_state=seed)
        points = (points - points.mean(axis=0)) * 2.5
    points = points.astype(np.float32)
    train, test = _split_indices(labels, test_fraction, seed)
    tensor = torch.from_numpy(points)
    target = torch.from_numpy(labels.astype(np.int64))
    return Dataset(
        name, tensor[train], target[train], tensor[test], target[test], ["blue", "orange"],
        description=f"2-D toy set {name!r}, noise {noise}",
    )
