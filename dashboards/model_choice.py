"""The one model picker every page uses, and where the models behind it live.

**Shared** models (the bundled network, timm/torchvision networks whose weights are cached on this
machine) are frozen, loaded once per server process and used under a lock. The bundled one is
loaded in a background thread as soon as the server runs its first script (:func:`start_warm_up`),
so the home page paints while torch imports. **Learner** models (trained on the Train page, uploaded
on Your model) live in ``st.session_state`` only: another learner never sees them.

Nothing here imports torch or ``explainer`` at module level: the first paint must not wait for them.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import streamlit as st
from training_queue import bound_threads

if TYPE_CHECKING:
    import explainer

#: The bundled model's name (``explainer.BUNDLED_MODEL``; the warm-up checks that they agree).
BUNDLED_NAME = "efficientnet_lite0"
#: Cache key of the one model every learner shares (frozen: nobody trains it).
BUNDLED_KEY = f"bundled:{BUNDLED_NAME}"
#: Session-state key of this learner's own models (trained or uploaded), by model key.
LEARNER_MODELS = "learner_models"
#: Widget key of the app-wide model picker (in the sidebar) and of a pending request to change it.
MODEL_CHOICE = "model_choice"
MODEL_REQUEST = "model_request"
#: Images that fit ImageNet models.
PHOTOS = "photos"
#: timm names tried when looking for cached hub weights (besides every ``timm/...`` repo in the cache).
KNOWN_TIMM = ("resnet18", "convnext_atto", "vit_tiny_patch16_224", "mobilenetv3_small_100", "resnet50")
KNOWN_TORCHVISION = ("resnet18", "mobilenet_v3_small", "resnet50", "efficientnet_b0")
#: Seconds after the first page was sent before the bundled model starts loading (sooner when a page needs it):
#: the browser fetches the page's JavaScript from this server meanwhile.
WARM_UP_DELAY = 2.0


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
def _load_bundled() -> explainer.Classifier:
    import explainer

    if explainer.BUNDLED_MODEL != BUNDLED_NAME:
        raise RuntimeError(f"model_choice.BUNDLED_NAME is {BUNDLED_NAME!r}, the library bundles "
                           f"{explainer.BUNDLED_MODEL!r}: update it.")
    return explainer.load_model(BUNDLED_NAME, device="cpu")


class WarmUp:
    """The bundled model, loading in a background thread: after :data:`WARM_UP_DELAY` s or when first needed.

    Importing torch holds Python's GIL for long stretches (loading its extension modules); started at
    once it would stall the server thread that sends the first page and its JavaScript.
    """

    def __init__(self) -> None:
        self.now = threading.Event()
        self.future: Future = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explainer-warm-up").submit(
            self._run)

    def _run(self) -> explainer.Classifier:
        self.now.wait(WARM_UP_DELAY)
        bound_threads()  # every session's torch calls share the cores: bounded once, before the first forward
        return _load_bundled()

    def result(self) -> explainer.Classifier:
        """The bundled classifier (starting the load now if it is still waiting; blocks until loaded)."""
        self.now.set()
        return self.future.result()


@st.cache_resource(show_spinner=False)
def _warm_up() -> WarmUp:
    """Once per server: the background load of the bundled model."""
    return WarmUp()


def start_warm_up() -> None:
    """Start loading the bundled model in the background (a no-op after the first call in this server)."""
    _warm_up()


def warmed_up() -> bool:
    """True once the library is imported and the bundled model loaded."""
    return _warm_up().future.done()


@st.cache_resource(show_spinner="Loading the model (offline, once per server)…")
def _hub_classifier(key: str) -> explainer.Classifier:
    import explainer

    kind, name = key.split(":", 1)
    return explainer.load_model(name if kind == "timm" else f"torchvision:{name}", device="cpu")


def shared_classifier(key: str = BUNDLED_KEY) -> explainer.Classifier:
    """A frozen shared classifier by key (``bundled:NAME``, ``timm:NAME``, ``torchvision:NAME``)."""
    if key != BUNDLED_KEY:
        return _hub_classifier(key)
    warm = _warm_up()
    if not warm.future.done():
        with st.spinner("Loading the model (offline, once per server)…"):
            return warm.result()
    return warm.result()


def bundled_classifier(key: str = BUNDLED_KEY) -> explainer.Classifier:
    """The bundled ImageNet classifier, loaded once per server process and shared (read-only)."""
    return shared_classifier(key)


@st.cache_resource
def model_lock(key: str = BUNDLED_KEY) -> threading.Lock:
    """Serialises forward/backward passes on a shared model: Captum's hooks must not see another learner's."""
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
            if name != BUNDLED_NAME and timm_weights_cached(name):
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
    """Every model this learner may pick, bundled first, then cached hub models, then their own.

    The hub models join once the warm-up has imported the library (a few seconds after the first
    visit): looking for them earlier would hold the first paint for torch's import.
    """
    entries = {BUNDLED_KEY: ModelEntry(BUNDLED_KEY, "EfficientNet-Lite0 (bundled, ImageNet)", "bundled",
                                       note="1,000 ImageNet classes, 224 px, shipped with the package")}
    for key, label in (cached_hub_models() if warmed_up() else []):
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
