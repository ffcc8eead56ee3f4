"""The "Which map can I trust?" section: attribution methods and controls scored over images, with intervals.

Call it from a page (the black-box page does)::

    from sections.trust import render_trust_section
    render_trust_section(classifier, key="trust", images=sample_photos(), lock=model_lock())

``render_trust_section(classifier, *, key="trust", images=None, lock=None, default_methods=None,
max_images=6) -> Evaluation | None``

* ``classifier`` – the :class:`explainer.Classifier` to evaluate (never modified);
* ``key`` – a prefix for the widget keys, unique on the page;
* ``images`` – ``{name: image}`` to evaluate live (default: the bundled sample photos);
* ``lock`` – held while the evaluation runs (for a model shared between sessions);
* ``default_methods`` – preselected methods (default Grad-CAM, Integrated Gradients, saliency);
* ``max_images`` – the most images a live run may use (small N: this runs on the page's CPU);
* ``cache_key`` – names the classifier and images (e.g. a model key and a content hash): the pixels are then
  prepared once per key and session instead of on every rerun.

The learner picks methods, metrics and how many images, sees the estimate (one timed image) before
anything runs, then runs it live with a progress bar and the time left – or opens a results file
written by ``explainer evaluate --out FILE``. Shown: the forest plot (controls grey), the verdict with
its flags, mean curves and a per-image scatter of two methods. Returns the Evaluation shown, or None.
No ML here: the numbers come from :func:`explainer.evaluate` with exactly the settings on screen, so a
notebook call with the same settings gives the same numbers.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path
from typing import Any

import streamlit as st
from common import shows_errors

import explainer
from explainer import Evaluation, evaluate, list_methods
from explainer.data.evaluation_data import load_evaluation_data
from explainer.evidence.controls import CONTROLS
from explainer.evidence.evaluation_estimate import estimate_evaluation
from explainer.evidence.image_scoring import Settings
from explainer.evidence.metrics import METRICS, ROAD_NOISE
from explainer.plots.evidence import forest_plot, mean_curves, method_scatter

DEFAULT_METHODS = ("gradcam", "integrated_gradients", "saliency")
#: Metrics offered for photos (no masks there); ROAD is slow at 224 px on a CPU, so it is opt-in.
LIVE_METRICS = ("deletion_morf", "deletion_lerf", "insertion", "randomization", "sparseness")
MAX_RESULTS_MB = 50
#: Session-state key of the pixels prepared for the live evaluation (see ``cache_key``).
TRUST_DATA = "trust_data"


def render_trust_section(
    classifier: explainer.Classifier,
    *,
    key: str = "trust",
    images: dict[str, Any] | None = None,
    lock: threading.Lock | None = None,
    default_methods: tuple[str, ...] | None = None,
    max_images: int = 6,
    cache_key: str | None = None,
) -> Evaluation | None:
    """Render the section (see the module docstring for the arguments); returns the Evaluation shown."""
    st.subheader("Which map can I trust?")
    st.caption(
        "Every method and four control maps that know nothing of the model (random, edges, brightness, a centred "
        "blob) are scored by the same protocol on each image; means with Student-t 95 % intervals over images. The "
        "verdict below is the library's: paired t-tests Holm-adjusted over every comparison it rests on, a winner "
        "only from 5 images on; a method not shown to beat every control on a metric is marked ✗."
    )
    source = st.radio("Results", ["Evaluate live", "Open a results file"], horizontal=True, key=f"{key}_source")
    result = _live(classifier, key, images, lock, default_methods, max_images, cache_key) \
        if source == "Evaluate live" \
        else _open(key)
    if result is not None:
        _show(result, key)
    return result


def _choices(key: str, images: dict[str, Any], default_methods: tuple[str, ...] | None, max_images: int
             ) -> dict[str, Any]:
    available = [m for m in list_methods() if not m.startswith("control")]
    preset = [m for m in (default_methods or DEFAULT_METHODS) if m in available]
    methods = st.multiselect("Methods", available, default=preset, key=f"{key}_methods")
    metrics = st.multiselect("Metrics", list(METRICS), default=list(LIVE_METRICS), key=f"{key}_metrics",
                             help="; ".join(f"{m}: {METRICS[m].description} ({METRICS[m].better} is better)"
                                            for m in METRICS))
    cols = st.columns(3)
    count = cols[0].slider("Images", 1, max(1, min(max_images, len(images))), min(3, len(images)), key=f"{key}_n")
    steps = cols[1].slider("Steps per curve", 4, 25, 10, key=f"{key}_steps")
    controls = cols[2].checkbox("With controls", value=True, key=f"{key}_controls")
    return {"methods": methods, "metrics": metrics, "limit": count, "steps": steps, "controls": controls,
            "randomization_steps": 2}


def _live(classifier: explainer.Classifier, key: str, images: dict[str, Any] | None, lock: threading.Lock | None,
          default_methods: tuple[str, ...] | None, max_images: int, cache_key: str | None) -> Evaluation | None:
    photos = images if images is not None else explainer.sample_images()
    choice = _choices(key, photos, default_methods, max_images)
    if not choice["methods"] or not choice["metrics"]:
        st.info("Pick at least one method and one metric.")
        return None
    batch = list(photos.values())
    settings_key = repr(sorted(choice.items()))
    guard = lock if lock is not None else contextlib.nullcontext()
    with shows_errors():
        data = _evaluation_data(batch, classifier, choice["limit"], None if cache_key is None else f"{key}|{cache_key}")
        if st.session_state.get(f"{key}_estimated") != settings_key:
            if st.button("Estimate the time", key=f"{key}_estimate"):
                settings = Settings(
                    methods=tuple(choice["methods"]) + (tuple(CONTROLS) if choice["controls"] else ()), params={},
                    metrics=tuple(choice["metrics"]), steps=choice["steps"], baseline="zero", road_noise=ROAD_NOISE,
                    randomization_steps=choice["randomization_steps"], seed=0, targets=None, batch_size=None,
                    memory_budget_mb=None)
                with st.spinner("Timing one image …"), guard:
                    st.session_state[f"{key}_estimate_text"] = estimate_evaluation(classifier, data, settings).text()
                st.session_state[f"{key}_estimated"] = settings_key
                st.rerun()
            return st.session_state.get(f"{key}_result") if st.session_state.get(f"{key}_shown") == settings_key \
                else None
        st.write(f"Estimate: {st.session_state[f'{key}_estimate_text']}")
        if st.button("Run the evaluation", key=f"{key}_run", type="primary"):
            bar = st.progress(0.0, text="starting …")

            def progress(done: int, total: int, seconds_left: float | None) -> None:
                left = "" if seconds_left is None else f", about {seconds_left:.0f} s left"
                bar.progress(done / total, text=f"{done} / {total} images{left}")

            with guard:
                result = evaluate(classifier, batch, limit=choice["limit"], methods=choice["methods"],
                                  metrics=choice["metrics"], controls=choice["controls"], steps=choice["steps"],
                                  randomization_steps=choice["randomization_steps"], progress=progress)
            st.session_state[f"{key}_result"] = result
            st.session_state[f"{key}_shown"] = settings_key
        if st.session_state.get(f"{key}_shown") == settings_key:
            return st.session_state.get(f"{key}_result")
    return None


def _evaluation_data(batch: list, classifier: explainer.Classifier, limit: int, cache_key: str | None) -> Any:
    """The images as pixels for ``classifier``: once per ``cache_key`` and limit in this session (None: every time)."""
    if cache_key is None:
        return load_evaluation_data(batch, classifier, limit)
    memo = st.session_state.setdefault(TRUST_DATA, {})
    slot = f"{cache_key}|{limit}"
    if slot not in memo:
        memo.clear()  # one input at a time: the previous photo's pixels go
        memo[slot] = load_evaluation_data(batch, classifier, limit)
    return memo[slot]


def _open(key: str) -> Evaluation | None:
    upload = st.file_uploader("Results file from `explainer evaluate --out FILE`", type=["jsonl", "json"],
                              key=f"{key}_file")
    if upload is None:
        return None
    if upload.size > MAX_RESULTS_MB * 2**20:
        st.error(f"The file is larger than {MAX_RESULTS_MB} MB.")
        return None
    with shows_errors(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "results.jsonl"
        path.write_bytes(upload.getvalue())
        return Evaluation.from_results(str(path))
    return None


def _show(result: Evaluation, key: str) -> None:
    st.plotly_chart(forest_plot(result), width="stretch", key=f"{key}_forest")
    st.markdown("**Verdict**")
    for line in result.verdict().splitlines():
        st.markdown(("⚠️ " if line.startswith("Flag:") else "- ") + line)
    curves = [c for c in ("deletion_morf", "insertion") if c in result.metrics]
    if curves:
        st.plotly_chart(mean_curves(result, curves), width="stretch", key=f"{key}_curves")
    metrics = result.available_metrics()
    if len(result.methods) >= 2 and metrics:
        cols = st.columns(3)
        a = cols[0].selectbox("Method", result.methods, index=0, key=f"{key}_a")
        b = cols[1].selectbox("against", result.methods, index=1 if len(result.methods) > 1 else 0, key=f"{key}_b")
        metric = cols[2].selectbox("on", metrics, key=f"{key}_metric")
        st.plotly_chart(method_scatter(result, a, b, metric), width="stretch", key=f"{key}_scatter")
