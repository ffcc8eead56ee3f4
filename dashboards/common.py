"""Dashboard-only helpers: shared frozen model, image picker, error display, report downloads.

No ML here: every number shown comes from the ``explainer`` library.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator

import streamlit as st
from PIL import Image

import explainer
from explainer.data.images import MAX_IMAGE_BYTES
from explainer.errors import ExplainerError
from explainer.report import ReportSection, build_report

#: Cache key of the one model every learner shares (frozen: nobody trains it).
BUNDLED_KEY = f"bundled:{explainer.BUNDLED_MODEL}"
#: Session-state key holding the report sections a learner has produced so far.
REPORT_KEY = "report_sections"
UPLOAD_CHOICE = "Upload my own…"


@st.cache_resource(show_spinner="Loading the bundled EfficientNet-Lite0 (ImageNet, offline)…")
def bundled_classifier(key: str = BUNDLED_KEY) -> explainer.Classifier:
    """The bundled ImageNet classifier, loaded once per server process and shared (read-only)."""
    return explainer.load_model(key.split(":", 1)[1])


@st.cache_resource
def model_lock(key: str = BUNDLED_KEY) -> threading.Lock:
    """Serialises work on a shared model: Captum's hooks must not see another learner's forward pass."""
    return threading.Lock()


@st.cache_resource(show_spinner=False)
def sample_photos(key: str = "skimage-samples") -> dict[str, Image.Image]:
    """The bundled sample photos by name (shared, never modified)."""
    return explainer.sample_images()


def content_key(data: bytes) -> str:
    """A cache key for uploaded bytes: their SHA-256 (never the bytes or a tensor themselves)."""
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def shows_errors(stop: bool = True) -> Iterator[None]:
    """Show an explainer error as a red box with its message (and stop the page when ``stop``)."""
    try:
        yield
    except ExplainerError as exc:
        st.error(str(exc), icon=":material/error:")
        if stop:
            st.stop()


def pick_image(key: str, default: str = "cat") -> tuple[str, Image.Image] | None:
    """A sample-photo picker with an upload option; returns ``(name, image)`` or None before an upload."""
    photos = sample_photos()
    names = [*photos, UPLOAD_CHOICE]
    choice = st.selectbox("Photo", names, index=names.index(default), key=f"{key}_photo")
    if choice != UPLOAD_CHOICE:
        return choice, photos[choice]
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


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"


def offer_report(key: str, section: ReportSection) -> None:
    """Remember ``section`` for the Report page and offer it as a self-contained HTML download."""
    sections: dict[str, ReportSection] = st.session_state.setdefault(REPORT_KEY, {})
    sections[key] = section
    st.download_button(
        "Download this view as HTML", data=lambda: build_report([section], title=section.title),
        file_name=f"{slug(section.title)}.html", mime="text/html", on_click="ignore", key=f"download_{key}",
        icon=":material/download:",
    )


def report_sections() -> dict[str, ReportSection]:
    """The sections this learner has produced in this session, by view key."""
    return st.session_state.get(REPORT_KEY, {})
