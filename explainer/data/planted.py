"""`planted`: synthetic colour images with a known truth for every kind of explanation.

The label is set by a *causal object*: an 8×8 patch of stripes (horizontal for class 0, vertical for
class 1) at a random place. A *shortcut* – a small coloured square in the top-left corner, red or blue –
shows the colour of the label in a share ``shortcut`` of the training images and a random colour in the
rest (so ``shortcut=0`` carries no label information and ``shortcut=1`` predicts the label perfectly);
in the test set its colour is random, and :attr:`PlantedTruth.x_test_flipped` holds the same test
images with every shortcut showing the *other* class's colour (:attr:`PlantedTruth.x_test_removed`:
the shortcut painted over with the background). A *distractor* – a grey bar at a random place – carries
no label information. A share ``mislabeled`` of the training labels is changed to the other class;
:attr:`PlantedTruth.mislabeled` lists exactly those indices. Every mask is bool ``(N, 1, H, W)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explainer.data.datasets import Dataset, _check_bytes, _count, _real

CLASS_NAMES = ["horizontal stripes", "vertical stripes"]
#: The shortcut colour of each class (RGB in [0, 1]): red for class 0, blue for class 1.
SHORTCUT_COLOURS = ((0.9, 0.1, 0.1), (0.1, 0.2, 0.9))
BACKGROUND = 0.45
OBJECT = 8  # side of the causal object, in pixels
PATCH = 5  # side of the shortcut square, in pixels (at the top-left corner, 1 px in)


@dataclass
class PlantedTruth:
    """Everything planted in a ``planted`` dataset, so any explanation can be scored against it.

    ``object_masks_*``, ``shortcut_masks_*``, ``distractor_masks_*``: where each part is, bool
    ``(N, 1, H, W)``. ``shortcut_agrees``: per training image, True where the shortcut shows the colour of
    the image's true class. ``clean_y_train``: the training labels before ``mislabeled`` were changed;
    ``mislabeled``: the sorted indices whose label was changed (exactly those where
    ``y_train != clean_y_train``). ``x_test_flipped``: the test images with the shortcut showing another
    class's colour; ``x_test_removed``: with the shortcut painted over with the background.
    """

    shortcut: float
    mislabeled_share: float
    object_masks_train: torch.Tensor = field(repr=False)
    object_masks_test: torch.Tensor = field(repr=False)
    shortcut_masks_train: torch.Tensor = field(repr=False)
    shortcut_masks_test: torch.Tensor = field(repr=False)
    distractor_masks_train: torch.Tensor = field(repr=False)
    distractor_masks_test: torch.Tensor = field(repr=False)
    shortcut_agrees: torch.Tensor = field(repr=False)
    clean_y_train: torch.Tensor = field(repr=False)
    mislabeled: torch.Tensor = field(repr=False)
    x_test_flipped: torch.Tensor = field(repr=False)
    x_test_removed: torch.Tensor = field(repr=False)
    seed: int = 0

    @property
    def shortcut_agreement(self) -> float:
        """Share of training images whose shortcut shows the colour of their true class."""
        return float(self.shortcut_agrees.float().mean())


def _stripes(horizontal: bool, phase: int, contrast: float) -> np.ndarray:
    """An ``OBJECT``×``OBJECT`` stripe pattern (period 2) with values around the background."""
    line = ((np.arange(OBJECT) + phase) % 2).astype(np.float32)
    grid = np.repeat(line[:, None], OBJECT, axis=1) if horizontal else np.repeat(line[None, :], OBJECT, axis=0)
    return BACKGROUND + contrast * (grid - 0.5) * 2


def make_planted(
    n_train: int = 1000,
    n_test: int = 400,
    size: int = 32,
    shortcut: float = 0.9,
    mislabeled: float = 0.05,
    noise: float = 0.03,
    seed: int = 0,
) -> Dataset:
    """The ``planted`` dataset (see the module docstring); ``dataset.truth`` is its :class:`PlantedTruth`."""
    n_train = _count("n_train", n_train, 20, 1_000_000)
    n_test = _count("n_test", n_test, 10, 1_000_000)
    size = _count("size", size, 20, 256)
    shortcut = _real("shortcut", shortcut, 0.0, 1.0)
    mislabeled = _real("mislabeled", mislabeled, 0.0, 0.5)
    noise = _real("noise", noise, 0.0, 0.2)
    seed = _count("seed", seed, 0, 2**32 - 1)
    _check_bytes("planted", n_train + 3 * n_test, 3 * size * size * 4 * 2 + 3 * size * size)
    rng = np.random.default_rng(seed)
    colours = np.asarray(SHORTCUT_COLOURS, dtype=np.float32)
    corner = PATCH + 2  # the object and the distractor keep clear of the shortcut's corner

    def make(count: int, informative: float) -> dict[str, np.ndarray]:
        images = (BACKGROUND + rng.normal(0.0, noise, size=(count, 3, size, size))).astype(np.float32)
        masks = {part: np.zeros((count, 1, size, size), dtype=bool) for part in ("object", "shortcut", "distractor")}
        labels = rng.integers(0, 2, size=count)
        agrees = rng.random(count) < informative
        shown = np.where(agrees, labels, rng.integers(0, 2, size=count))
        for i, label in enumerate(labels):
            while True:
                top, left = (int(v) for v in rng.integers(0, size - OBJECT + 1, size=2))
                if top >= corner or left >= corner:
                    break
            pattern = _stripes(label == 0, int(rng.integers(0, 2)), float(rng.uniform(0.25, 0.4)))
            tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
            images[i, :, top : top + OBJECT, left : left + OBJECT] = pattern[None] * tint[:, None, None]
            masks["object"][i, 0, top : top + OBJECT, left : left + OBJECT] = True
            horizontal = rng.random() < 0.5
            length, offset = int(rng.integers(size // 3, size // 2)), int(rng.integers(corner, size - 2))
            start = int(rng.integers(0, size - length))
            bar = np.zeros((size, size), dtype=bool)
            if horizontal:
                bar[offset : offset + 2, start : start + length] = True
            else:
                bar[start : start + length, offset : offset + 2] = True
            bar &= ~masks["object"][i, 0]
            images[i, :, bar] = float(rng.uniform(0.7, 0.85))
            masks["distractor"][i, 0] = bar
        masks["shortcut"][:, 0, 1 : 1 + PATCH, 1 : 1 + PATCH] = True
        flipped, removed = images.copy(), images.copy()
        images[:, :, 1 : 1 + PATCH, 1 : 1 + PATCH] = colours[shown][:, :, None, None]
        flipped[:, :, 1 : 1 + PATCH, 1 : 1 + PATCH] = colours[1 - labels][:, :, None, None]
        removed[:, :, 1 : 1 + PATCH, 1 : 1 + PATCH] = BACKGROUND
        return {"images": images, "labels": labels, "agrees": shown == labels, "flipped": flipped,
                "removed": removed, **{f"{part}_masks": mask for part, mask in masks.items()}}

    train = make(n_train, shortcut)
    test = make(n_test, 0.0)
    clean = train["labels"].copy()
    wrong = np.sort(rng.choice(n_train, size=int(round(mislabeled * n_train)), replace=False))
    noisy = clean.copy()
    noisy[wrong] = 1 - clean[wrong]

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.clip(array, 0.0, 1.0) if array.dtype == np.float32 else array)

    truth = PlantedTruth(
        shortcut=shortcut, mislabeled_share=mislabeled,
        object_masks_train=tensor(train["object_masks"]), object_masks_test=tensor(test["object_masks"]),
        shortcut_masks_train=tensor(train["shortcut_masks"]), shortcut_masks_test=tensor(test["shortcut_masks"]),
        distractor_masks_train=tensor(train["distractor_masks"]), distractor_masks_test=tensor(test["distractor_masks"]),
        shortcut_agrees=torch.from_numpy(train["agrees"]), clean_y_train=torch.from_numpy(clean.astype(np.int64)),
        mislabeled=torch.from_numpy(wrong.astype(np.int64)), x_test_flipped=tensor(test["flipped"]),
        x_test_removed=tensor(test["removed"]), seed=seed,
    )
    return Dataset(
        "planted", tensor(train["images"]), torch.from_numpy(noisy.astype(np.int64)), tensor(test["images"]),
        torch.from_numpy(test["labels"].astype(np.int64)), list(CLASS_NAMES),
        masks_train=truth.object_masks_train, masks_test=truth.object_masks_test,
        description=(f"class = orientation of a stripe patch at a random place; a corner colour shortcut set by the "
                     f"label in {shortcut:.0%} of training images (random in test); {len(wrong)} training labels "
                     "flipped; a grey bar as distractor"),
        truth=truth,
    )
