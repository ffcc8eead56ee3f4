"""load_dataset: offline sets, the real torchvision loaders on tiny local files, and clear errors."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from explainer import DatasetError, InputError, load_dataset
from explainer.data.datasets import TOY_SETS


def test_digits_split_is_stratified_and_scaled() -> None:
    data = load_dataset("digits")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert len(data.y_train) + len(data.y_test) == 1797
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    counts = torch.bincount(data.y_test, minlength=10)
    assert int(counts.min()) >= 34 and int(counts.max()) <= 38


def test_textures_train_and_test_come_from_different_halves() -> None:
    data = load_dataset("textures", crop_size=32, train_per_class=5, test_per_class=4)
    assert data.class_names[:3] == ["brick", "grass", "gravel"]
    assert data.x_train.shape == (30, 3, 32, 32) and data.x_test.shape == (24, 3, 32, 32)
    # on the fully textured photos (brick, grass, gravel) no test crop is near any train crop:
    # they come from disjoint halves of each photo
    textured_test = data.x_test[data.y_test < 3].flatten(1)
    textured_train = data.x_train[data.y_train < 3].flatten(1)
    assert float(torch.cdist(textured_test, textured_train).min()) > 1.0


def test_known_answer_masks_mark_the_class_square() -> None:
    data = load_dataset("known_answer", n_train=40, n_test=20, size=32)
    assert data.masks_test is not None and data.masks_test.shape == (20, 1, 32, 32)
    for image, mask, label in zip(data.x_test, data.masks_test, data.y_test):
        rows, cols = torch.nonzero(mask[0], as_tuple=True)
        quadrant = int(rows.float().mean() >= 16) * 2 + int(cols.float().mean() >= 16)
        assert quadrant == int(label)
        assert float(image[:, mask[0]].mean()) > 0.75  # the square is bright
    area = data.masks_test.float().mean()
    assert 0.005 < float(area) < 0.05


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_sets(name: str) -> None:
    data = load_dataset(name, n=200, noise=0.1, test_fraction=0.25, seed=3)
    assert data.x_train.shape == (150, 2) and data.x_test.shape == (50, 2)
    assert set(data.y_train.tolist()) == {0, 1}
    again = load_dataset(name, n=200, noise=0.1, test_fraction=0.25, seed=3)
    assert torch.equal(data.x_train, again.x_train)


def _write_idx(path, array: np.ndarray) -> None:
    dtype_code = 0x08
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_loader_on_tiny_idx_files(tmp_path, name: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count))
    data = load_dataset(name, root=tmp_path)
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert data.num_classes == 10 and float(data.x_train.max()) <= 1.0
    limited = load_dataset(name, root=tmp_path, limit=3)
    assert len(limited.y_train) == 3


def test_missing_torchvision_files_offline(tmp_path) -> None:
    with pytest.raises(DatasetError, match=r"MNIST files were not found under .*download=True"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(DatasetError, match="CIFAR10 files were not found"):
        load_dataset("cifar10", root=tmp_path)


def _write_folder(root, classes=("ants", "bees"), per_class=4, seed=0) -> None:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / name / f"{i}.png")


def test_imagefolder_with_split(tmp_path) -> None:
    _write_folder(tmp_path)
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=16, test_fraction=0.5)
    assert data.class_names == ["ants", "bees"]
    assert data.x_train.shape == (4, 3, 16, 16) and data.x_test.shape == (4, 3, 16, 16)


def test_imagefolder_with_train_and_test_folders(tmp_path) -> None:
    _write_folder(tmp_path / "train", per_class=3, seed=1)
    _write_folder(tmp_path / "test", per_class=2, seed=2)
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=8)
    assert len(data.y_train) == 6 and len(data.y_test) == 4


def test_imagefolder_keeps_train_and_test_disjoint(tmp_path) -> None:
    _write_folder(tmp_path / "train", per_class=3, seed=1)
    _write_folder(tmp_path / "test", per_class=2, seed=2)
    for i in (0, 1):  # two train images copied into test (one under another name)
        (tmp_path / "test" / "ants" / f"copy{i}.png").write_bytes((tmp_path / "train" / "ants" / f"{i}.png").read_bytes())
    with pytest.warns(RuntimeWarning, match="Dropped 2 train image"):
        data = load_dataset(f"imagefolder:{tmp_path}", image_size=8)
    assert len(data.y_test) == 6 and len(data.y_train) == 4
    train = {tuple(x.flatten().tolist()) for x in data.x_train}
    assert not train & {tuple(x.flatten().tolist()) for x in data.x_test}


def test_imagefolder_symlink_loop_and_links_count_each_file_once(tmp_path) -> None:
    _write_folder(tmp_path, per_class=3)
    (tmp_path / "ants" / "loop").symlink_to(tmp_path / "ants")  # a folder that contains itself
    (tmp_path / "bees" / "to_ants").symlink_to(tmp_path / "ants")  # a second path to a class
    (tmp_path / "ants" / "0_link.png").symlink_to(tmp_path / "ants" / "0.png")
    os.link(tmp_path / "ants" / "1.png", tmp_path / "ants" / "1_hard.png")
    data = load_dataset(f"imagefolder:{tmp_path}", image_size=8, test_fraction=0.5)
    assert len(data.y_train) + len(data.y_test) == 6


def test_imagefolder_with_a_corrupt_file_names_it(tmp_path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "ants" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"broken\.png is not an image file"):
        load_dataset(f"imagefolder:{tmp_path}", image_size=16)


def test_imagefolder_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no class sub-folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    (tmp_path / "empty" / "cats").mkdir()
    with pytest.raises(DatasetError, match="cats holds no image files"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")


def test_unknown_dataset_and_options() -> None:
    with pytest.raises(DatasetError, match="Unknown dataset 'digit'.*digits"):
        load_dataset("digit")
    with pytest.raises(InputError, match="does not take that option"):
        load_dataset("digits", colour=True)
    with pytest.raises(InputError, match="noise must be between 0 and 0.5"):
        load_dataset("spiral", noise=3)
    with pytest.raises(InputError, match="test_fraction must be between 0 and 1"):
        load_dataset("digits", test_fraction=1.5)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (None, {}, "dataset name must be a string"),
        ("digits", {"test_fraction": "x"}, "test_fraction must be a number"),
        ("digits", {"test_fraction": float("nan")}, "test_fraction must be between"),
        ("digits", {"seed": True}, "seed must be a whole number"),
        ("known_answer", {"n_train": -1}, "n_train must be from 1"),
        ("known_answer", {"n_train": 2.5}, "n_train must be a whole number"),
        ("known_answer", {"size": 20000}, "size must be from 16"),
        ("known_answer", {"n_train": 10_000_000, "size": 1024}, "GiB"),
        ("imagefolder:.", {"image_size": 0}, "image_size must be from 8"),
        ("spiral", {"noise": float("inf")}, "noise must be between"),
        ("spiral", {"n": True}, "n must be a whole number"),
        ("textures", {"crop_size": True}, "crop_size must be a whole number"),
        ("mnist", {"limit": -1}, "limit must be from 1"),
        ("mnist", {"download": "yes"}, "download must be True or False"),
    ],
)
def test_options_are_type_strict_and_bounded(name, options, message) -> None:
    with pytest.raises(InputError, match=message):
        load_dataset(name, **options)
