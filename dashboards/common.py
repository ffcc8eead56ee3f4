"""Dashboard-only helpers: the one model picker, inputs that fit the picked model, caches, errors, reports.

No ML here: every number shown comes from the ``explainer`` library.

Models come from two places. **Shared** ones (the bundled network, timm/torchvision networks whose
weights are cached on this machine) are frozen, loaded once per server process in
``st.cache_resource`` and used under a lock. **Learner** ones (trained on the Train page, uploaded
on Your model) live in ``st.session_state`` only: another learner never sees them, not even in a
cache, and what is computed on them is remembered in the session too.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

import explainer
from explainer.data.images import MAX_IMAGE_BYTES
from explainer.errors import ExplainerError
from explainer.report import ReportSection, build_report

T = TypeVar("T")
#: The library calls the pages show by name (the home page's notebook hint names ``anatomy_of.__name__``).
anatomy_of = explainer.model_anatomy
layer_activations = explainer.layer_activations

#: Cache key of the one model every learner shares (frozen: nobody trains it).
BUNDLED_KEY = f"bundled:{explainer.BUNDLED_MODEL}"
#: Session-state key holding the report sections a learner has produced so far.
REPORT_KEY = "report_sections"
#: Session-state key of this learner's own models (trained or uploaded), by model key.
LEARNER_MODELS = "learner_models"
#: Widget key of the app-wide model picker (in the sidebar) and of a pending request to change it.
MODEL_CHOICE = "model_choice"
MODEL_REQUEST = "model_request"
#: Session-state key of results computed on this learner's own models (bounded, newest kept).
LEARNER_MEMO = "learner_memo"
LEARNER_MEMO_SIZE = 96
UPLOAD_CHOICE = "Upload my own…"
#: Images that fit ImageNet models.
PHOTOS = "photos"
#: Test images offered for a dataset model.
TEST_CHOICES = 40
#: timm names tried when looking for cached hub weights (besides every ``timm/...`` repo in the cache).
KNOWN_TIMM = ("resnet18", "convnext_atto", "vit_tiny_patch16_224", "mobilenetv3_small_100", "resnet50")
KNOWN_TORCHVISION = ("resnet18", "mobilenet_v3_small", "resnet50", "efficientnet_b0")


@dataclass
class ModelEntry:
    """One choice in the model picker. ``images`` is :data:`PHOTOS` or the dataset the model was trained on."""

    key: str
    label: str
    kind: str  # "bundled", "cached", "trained" or "uploaded"
    images: str = PHOTOS
    note: str = ""
    shared: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------ shared models
@st.cache_resource(show_spinner="Loading the model (offline, once per server)…")
def shared_classifier(key: str = BUNDLED_KEY) -> explainer.Classifier:
    """A frozen shared classifier by key (``bundled:NAME``, ``timm:NAME``, ``torchvision:NAME``)."""
    kind, name = key.split(":", 1)
    if kind == "bundled":
        return explainer.load_model(name, device="cpu")
    if kind == "timm":
        return explainer.load_model(name, device="cpu")
    return explainer.load_model(f"torchvision:{name}", device="cpu")


def bundled_classifier(key: str = BUNDLED_KEY) -> explainer.Classifier:
    """The bundled ImageNet classifier, loaded once per server process and shared (read-only)."""
    return shared_classifier(key)


@st.cache_resource
def model_lock(key: str = BUNDLED_KEY) -> threading.Lock:
    """Serialises work on a shared model: Captum's hooks must not see another learner's forward pass."""
    return threading.Lock()


@st.cache_data(ttl=600, show_spinner=False)
def cached_hub_models() -> list[tuple[str, str]]:
    """(picker key, label) of timm and torchvision models whose pretrained weights are on this machine."""
    from explainer.models.sources import timm_weights_cached, torchvision_weights_cached

    names = set(KNOWN_TIMM)
    with contextlib.suppress(Exception):
        from huggingface_hub import constants, scan_cache_dir

        names |= {repo.repo_id.split("/", 1)[1].split(".", 1)[0]
                  for repo in scan_cache_dir(constants.HF_HUB_CACHE).repos if repo.repo_id.startswith("timm/")}
    found = []
    for name in sorted(names):
        with contextlib.suppress(Exception):
            if name != explainer.BUNDLED_MODEL and timm_weights_cached(name):
                found.append((f"timm:{name}", f"{name} (timm, ImageNet, cached)"))
    for name in KNOWN_TORCHVISION:
        with contextlib.suppress(Exception):
            if torchvision_weights_cached(name):
                found.append((f"torchvision:{name}", f"torchvision:{name} (ImageNet, cached)"))
    return found


# ----------------------------------------------------------------------- learner models
def learner_models() -> dict[str, dict[str, Any]]:
    """This learner's own models by key: ``{"entry": ModelEntry, "classifier": Classifier, ...}``."""
    return st.session_state.setdefault(LEARNER_MODELS, {})


def add_learner_model(label: str, kind: str, classifier: explainer.Classifier, *, images: str = PHOTOS,
                      note: str = "", **extra: Any) -> str:
    """Keep one of this learner's models in the session and return its picker key."""
    key = f"{kind}:{uuid.uuid4().hex[:12]}"
    entry = ModelEntry(key, label, kind, images=images, note=note, shared=False, extra=extra)
    learner_models()[key] = {"entry": entry, "classifier": classifier, "lock": threading.Lock(), **extra}
    return key


def request_model(key: str) -> None:
    """Make ``key`` the picked model from the next run on (the picker is already drawn in this one)."""
    st.session_state[MODEL_REQUEST] = key


def model_entries() -> dict[str, ModelEntry]:
    """Every model this learner may pick, bundled first, then cached hub models, then their own."""
    entries = {BUNDLED_KEY: ModelEntry(BUNDLED_KEY, "EfficientNet-Lite0 (bundled, ImageNet)", "bundled",
                                       note="1,000 ImageNet classes, 224 px, shipped with the package")}
    for key, label in cached_hub_models():
        entries[key] = ModelEntry(key, label, "cached", note="pretrained weights found in this machine's cache")
    for key, held in learner_models().items():
        entries[key] = held["entry"]
    return entries


def model_picker() -> ModelEntry:
    """The app-wide picker (drawn once per run, in the sidebar by ``app.py``); returns the picked model."""
    entries = model_entries()
    requested = st.session_state.pop(MODEL_REQUEST, None)
    if requested in entries:
        st.session_state[MODEL_CHOICE] = requested
    if st.session_state.get(MODEL_CHOICE) not in entries:
        st.session_state[MODEL_CHOICE] = BUNDLED_KEY
    key = st.sidebar.selectbox(
        "Model for every page", list(entries), key=MODEL_CHOICE, format_func=lambda k: entries[k].label,
        help="The bundled network, ImageNet networks cached on this machine, and the models you trained or "
             "uploaded in this session (only you see those).",
    )
    return entries[key]


def picked_model() -> ModelEntry:
    """The model picked in the sidebar (the bundled one before the picker ran)."""
    entries = model_entries()
    return entries.get(st.session_state.get(MODEL_CHOICE, BUNDLED_KEY), entries[BUNDLED_KEY])


def classifier_of(entry: ModelEntry) -> explainer.Classifier:
    """The classifier behind a picker entry."""
    if entry.shared:
        return shared_classifier(entry.key)
    return learner_models()[entry.key]["classifier"]


def lock_of(entry: ModelEntry) -> threading.Lock:
    """The lock to hold while a model computes (one per shared model; one per learner model)."""
    return model_lock(entry.key) if entry.shared else learner_models()[entry.key]["lock"]


@st.cache_data(max_entries=256, show_spinner=False)
def _shared_memo(model_key: str, what: str, key: str, _compute: Callable[[], Any]) -> Any:
    return _compute()


def remember(entry: ModelEntry, what: str, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per (model, what, key): in a server cache for shared models, in the session otherwise.

    ``key`` must name every input of ``compute`` (image hashes, method, parameters as JSON).
    The model's lock is held while it runs.
    """
    def locked() -> T:
        with lock_of(entry):
            return compute()

    if entry.shared:
        return _shared_memo(entry.key, what, key, locked)
    memo: collections.OrderedDict = st.session_state.setdefault(LEARNER_MEMO, collections.OrderedDict())
    slot = (entry.key, what, key)
    if slot not in memo:
        memo[slot] = locked()
        while len(memo) > LEARNER_MEMO_SIZE:
            memo.popitem(last=False)
    memo.move_to_end(slot)
    return memo[slot]


# -------------------------------------------------------------------------------- inputs
@st.cache_resource(show_spinner=False)
def sample_photos(key: str = "skimage-samples") -> dict[str, Image.Image]:
    """The bundled sample photos by name (shared, never modified)."""
    return explainer.sample_images()


@st.cache_data(max_entries=8, show_spinner="Loading the dataset…")
def dataset(name: str, limit: int | None = None) -> explainer.Dataset:
    """A dataset by name (the same read-only tensors for everyone)."""
    return explainer.load_dataset(name, **({"limit": limit} if limit else {}))


def content_key(data: bytes) -> str:
    """A cache key for uploaded bytes: their SHA-256 (never the bytes or a tensor themselves)."""
    return hashlib.sha256(data).hexdigest()


def input_key(image: Image.Image | torch.Tensor) -> str:
    """Content hash of an input (decoded pixels or a pixel tensor): the cache key for what is computed on it."""
    if isinstance(image, torch.Tensor):
        return content_key(image.detach().cpu().numpy().tobytes() + str(tuple(image.shape)).encode())
    return content_key(image.tobytes() + f"{image.size}{image.mode}".encode())


def params_key(params: dict) -> str:
    """Parameters as canonical JSON (a cache key part)."""
    return json.dumps(params, sort_keys=True, default=str)


@contextlib.contextmanager
def shows_errors(stop: bool = True) -> Iterator[None]:
    """Show an explainer error as a red box with its message (and stop the page when ``stop``)."""
    try:
        yield
    except ExplainerError as exc:
        st.error(str(exc), icon=":material/error:")
        if stop:
            st.stop()


def upload_image(key: str) -> tuple[str, Image.Image] | None:
    """An image upload read by the library (its caps and error messages); None before an upload."""
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
    image: Image.Image | torch.Tensor
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


# --------------------------------------------------------------------------- figures
def _gray_or_rgb(pixels: torch.Tensor) -> np.ndarray:
    """(C, H, W) pixels in [0, 1] → (H, W, 3) uint8 for an image trace."""
    array = pixels.detach().cpu().float().clamp(0, 1).numpy()
    if array.shape[0] == 1:
        array = np.repeat(array, 3, axis=0)
    return (array[:3].transpose(1, 2, 0) * 255).round().astype(np.uint8)


def sample_grid(data: explainer.Dataset, per_class: int = 2) -> go.Figure:
    """A few training images of each class in one picture (a column per class, labelled below)."""
    columns = []
    for c in range(data.num_classes):
        picks = torch.nonzero(data.y_train == c).flatten()[:per_class].tolist()
        columns.append([_gray_or_rgb(data.x_train[int(i)]) for i in picks])
    height, width = columns[0][0].shape[:2]
    gap = max(1, width // 8)
    mosaic = np.full((per_class * (height + gap), data.num_classes * (width + gap), 3), 255, dtype=np.uint8)
    for col, images in enumerate(columns):
        for row, image in enumerate(images):
            top, left = row * (height + gap), col * (width + gap)
            mosaic[top:top + height, left:left + width] = image
    figure = go.Figure(go.Image(z=mosaic, hoverinfo="skip"))
    figure.update_xaxes(tickvals=[c * (width + gap) + width / 2 for c in range(data.num_classes)],
                        ticktext=data.class_names, side="bottom", showgrid=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(title=f"{data.name}: training images ({len(data.y_train):,} in all), a column per class",
                         height=min(420, 120 + 90 * per_class), margin={"t": 60, "l": 10, "r": 10, "b": 40})
    return figure


def first_layer_filters(classifier: explainer.Classifier, limit: int = 32, cols: int = 8) -> go.Figure | None:
    """The learned kernels of the network's first convolution (what it looks for in raw pixels), or None."""
    conv = next((m for m in classifier.module.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if conv is None:
        return None
    name = next(n for n, m in classifier.module.named_modules() if m is conv)
    weights = conv.weight.detach().cpu().float()[:limit]
    rows = -(-len(weights) // cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[f"filter {i}" for i in range(len(weights))],
                           horizontal_spacing=0.015, vertical_spacing=0.08)
    limit_value = float(weights.abs().max()) or 1.0
    for i, kernel in enumerate(weights):
        figure.add_trace(go.Heatmap(z=kernel.mean(0).numpy().astype(np.float32), coloraxis="coloraxis",
                                    hovertemplate="%{z:.3f}<extra></extra>"), row=i // cols + 1, col=i % cols + 1)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed")
    figure.update_annotations(font_size=10)
    figure.update_layout(
        title=f"{name}: {conv.out_channels} learned {conv.kernel_size[0]}×{conv.kernel_size[1]} filters "
              f"(mean over {conv.in_channels} input channel(s); blue < 0 < red)",
        coloraxis={"colorscale": "RdBu_r", "cmin": -limit_value, "cmax": limit_value},
        height=110 * rows + 80, margin={"t": 70, "l": 10, "r": 10, "b": 10},
    )
    return figure


# ------------------------------------------------------------------------ URL state
def url_value(name: str, default: T, cast: Callable[[str], T] | None = None) -> T:
    """A setting from the page URL (``?name=value``), or ``default`` when it is missing or unreadable."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        if cast is not None:
            return cast(raw)
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")  # type: ignore[return-value]
        if isinstance(default, (tuple, list)):
            return type(default)(p for p in raw.split(",") if p)
        return type(default)(raw)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        return default


def _same_number(option: Any, text: str | None) -> bool:
    try:
        return text is not None and not isinstance(option, str) and float(option) == float(text)
    except (TypeError, ValueError):
        return False


def url_choice(name: str, options: list, default: Any) -> int:
    """The index of the URL's value among ``options`` (the default's index when absent or unknown)."""
    value = st.query_params.get(name)
    matches = [i for i, option in enumerate(options) if str(option) == value or _same_number(option, value)]
    return matches[0] if matches else options.index(default)


def url_option(name: str, options: list[T], default: T) -> T:
    """The URL's value when it is one of ``options`` (compared as numbers or text), else ``default``."""
    return options[url_choice(name, options, default)] if name in st.query_params else default


def write_url(values: dict[str, Any]) -> None:
    """Put the page's settings in the URL so that a copied link reopens the same experiment."""
    text = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in values.items()}
    if dict(st.query_params) != text:
        st.query_params.from_dict(text)


# ------------------------------------------------------------------------- reports
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


def shipped(path: str) -> Path:
    """A file shipped in the repository (``results/...``), by its path from the repository root."""
    return Path(__file__).resolve().parents[1] / path
