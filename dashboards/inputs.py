"""Inputs that fit the picked model: sample photos, a dataset's test images, the learner's upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import streamlit as st
from feedback import shows_errors
from model_choice import PHOTOS, ModelEntry

if TYPE_CHECKING:
    from PIL import Image

    import explainer

UPLOAD_CHOICE = "Upload my own…"
#: Test images offered for a dataset model.
TEST_CHOICES = 40


@st.cache_resource(show_spinner=False)
def sample_photos(key: str = "skimage-samples") -> dict[str, Image.Image]:
    """The bundled sample photos by name (shared, never modified)."""
    import explainer

    return explainer.sample_images()


@st.cache_resource(max_entries=8, show_spinner="Loading the dataset…")
def dataset(name: str, limit: int | None = None) -> explainer.Dataset:
    """A dataset by name (the same read-only tensors for everyone; cache_resource: no copy per rerun)."""
    import explainer

    return explainer.load_dataset(name, **({"limit": limit} if limit else {}))


def upload_image(key: str) -> tuple[str, Image.Image] | None:
    """An image upload read by the library (its caps and error messages); None before an upload."""
    import explainer
    from explainer.data.images import MAX_IMAGE_BYTES

    upload = st.file_uploader(
        f"An image (PNG, JPEG, …; at most {MAX_IMAGE_BYTES // 2**20} MiB)",
        type=["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"], key=f"{key}_upload",
    )
    if upload is None:
        st.info("Upload an image to continue.")
        return None
    with shows_errors():
        image = explainer.load_image(upload.getvalue(), name=upload.name)
    return upload.name, image


def pick_image(key: str, default: str = "cat") -> tuple[str, Image.Image] | None:
    """A sample-photo picker with an upload option; returns ``(name, image)`` or None before an upload."""
    photos = sample_photos()
    names = [*photos, UPLOAD_CHOICE]
    choice = st.selectbox("Photo", names, index=names.index(default), key=f"{key}_photo")
    if choice != UPLOAD_CHOICE:
        return choice, photos[choice]
    return upload_image(key)


@dataclass
class Picked:
    """An input for the picked model: a name, the image (PIL or a pixel tensor) and its true class if known."""

    name: str
    image: Any  # PIL.Image.Image | torch.Tensor
    truth: int | None = None


def pick_input(entry: ModelEntry, key: str) -> Picked | None:
    """Inputs that fit ``entry``: photos for ImageNet models, test images of the training set for a dataset
    model, and the learner's own upload for any. None while an upload is awaited."""
    if entry.images == PHOTOS:
        picked = pick_image(key)
        return None if picked is None else Picked(*picked)
    data = dataset(entry.images)
    count = min(TEST_CHOICES, len(data.y_test))
    options: list[int | str] = [*range(count), UPLOAD_CHOICE]
    choice = st.selectbox(
        f"A {data.name} test image", options, key=f"{key}_test_image",
        format_func=lambda i: i if isinstance(i, str) else f"test image {i} (true class {data.class_names[int(data.y_test[i])]})",
    )
    if choice == UPLOAD_CHOICE:
        picked = upload_image(key)
        return None if picked is None else Picked(*picked)
    index = int(choice)
    return Picked(f"{data.name} test image {index}", data.x_test[index], int(data.y_test[index]))
