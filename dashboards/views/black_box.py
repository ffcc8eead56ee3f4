"""Not a black box: for whichever model is picked – attributions with evidence, every layer, channels, ablation.

Each section is an ``st.fragment``: a widget reruns its own section only (adding a method redraws
the attributions, not the trust section or every layer's activations). What a section computes is
remembered per model and input (``memo.remember``), and so are the figures built from it, so a
rerun with nothing new costs only the drawing. Locks are held around the library's forward and
backward passes, never around figure building.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import streamlit as st
from common import (
    PHOTOS,
    Picked,
    classifier_of,
    dataset,
    input_key,
    keep_report,
    lock_of,
    offer_report,
    params_key,
    pick_input,
    picked_model,
    remember,
    sample_photos,
    shows_errors,
)
from method_settings import method_picker, settings_for
from sections.trust import render_trust_section
from training_queue import training_turn

import explainer
from explainer import METHODS, Explanation, ReportSection, build_cnn
from explainer.attribution.sizing import params_for_size
from explainer.inside.activations import default_layers
from explainer.inside.examples import right_and_wrong
from explainer.inside.filters import first_convolution
from explainer.plots.attribution import attribution_overlay, methods_grid
from explainer.plots.compact import compact_overlays
from explainer.plots.filters import filters_figure
from explainer.plots.inside import (
    channel_importance_figure,
    feature_maps_figure,
    intervention_figure,
    layer_stats_figure,
)

DEFAULT_METHODS = ["gradcam", "saliency"]
#: This learner's known-answer CNN (trained in the session, never shared).
KNOWN_KEY = "bb_known_answer"
KNOWN_IMAGES = 64
#: Methods estimated to take longer than this say so before they run.
SLOW_SECONDS = 1.0
#: Digits it gets right / wrong shown with their maps (dataset models).
EXAMPLES = 4
#: Session-state key of the report parts, one per section (each fragment replaces its own).
PARTS_KEY = "bb_report_parts"


def keep_part(name: str, figures: list | None = None, numbers: dict | None = None, tables: dict | None = None) -> None:
    """Replace this section's part of the page's report and keep the whole section for the Report page."""
    parts: dict[str, dict] = st.session_state.setdefault(PARTS_KEY, {})
    parts[name] = {"figures": figures or [], "numbers": numbers or {}, "tables": tables or {}}
    head = parts.get("head", {}).get("numbers", {})
    used = parts.get("attributions", {}).get("numbers", {}).get("methods", [])
    keep_report("black_box", ReportSection(
        f"Why {head.get('class explained', '?')}? ({head.get('image', '?')})",
        text=f"{head.get('model', '?')} explained with {', '.join(used)}.",
        figures=[f for part in parts.values() for f in part["figures"]],
        numbers={k: v for part in parts.values() for k, v in part["numbers"].items() if k != "methods"},
        tables={k: v for part in parts.values() for k, v in part["tables"].items()},
    ))


def attributions(entry, classifier, picked: Picked, key: str, methods: list[str], params: dict, target: int
                 ) -> tuple[list[Explanation], dict]:
    """One explanation per method (estimated first, slow ones announced), remembered per model and input."""
    image = picked.image
    costs = {m: remember(entry, "cost", f"{key}|{m}|{params_key(params[m])}",
                         partial(explainer.estimate_cost, classifier, image, m, **params[m])) for m in methods}
    slow = [m for m in methods if costs[m].seconds >= SLOW_SECONDS]
    if slow:
        st.caption("Slow on this machine: " + "; ".join(f"**{METHODS[m].title}** {costs[m].text()}" for m in slow))
    explanations = []
    progress = None
    for i, method in enumerate(methods):
        slot = f"{key}|{method}|{target}|{params_key(params[method])}"
        compute = partial(explainer.explain, classifier, image, method=method, target=target, **params[method])
        if progress is None:
            progress = st.empty()
        progress.progress(i / len(methods), text=f"{METHODS[method].title} ({i + 1}/{len(methods)}), "
                                                 f"{costs[method].text()}")
        with shows_errors():
            explanations.append(remember(entry, "explain", slot, compute))
    if progress is not None:
        progress.empty()
    return explanations, costs


def explanation_table(explanations: list[Explanation], costs: dict) -> list[dict]:
    """What each map cost: measured seconds next to the estimate."""
    return [{"method": METHODS[e.method].title, "seconds": e.seconds,
             "estimated seconds": costs[e.method].seconds if e.method in costs else None,
             "model evaluations": costs[e.method].evaluations if e.method in costs else None,
             "device": e.device, "layer": e.layer or "input", "parameters": json.dumps(e.params)}
            for e in explanations]


def trust_images(entry, picked: Picked) -> dict[str, Any]:
    """Images that fit the picked model for the trust section: this input first, then photos or test images."""
    if entry.images == PHOTOS:
        return {picked.name: picked.image, **{n: p for n, p in sample_photos().items() if n != picked.name}}
    data = dataset(entry.images)
    return {picked.name: picked.image, **{f"test image {i}": data.x_test[i] for i in range(12)}}


def train_known_answer(epochs: int) -> None:
    """Train a small CNN on the known-answer images (in this learner's training turn), one update per epoch."""
    data = dataset("known_answer")
    with training_turn(st.empty()):
        model = build_cnn(data.input_shape, data.num_classes)
        bar = st.progress(0.0, text="Training…")

        def on_epoch(stats: explainer.EpochStats) -> None:
            bar.progress(stats.epoch / epochs,
                         text=f"epoch {stats.epoch}/{epochs}: test accuracy {stats.test_accuracy:.1%}")

        run = explainer.fit(model, data, epochs=epochs, target_accuracy=0.95, callback=on_epoch, device="cpu")
        bar.empty()
    known = explainer.Classifier.from_module(model, dataset=data, name="known-answer CNN")
    st.session_state[KNOWN_KEY] = {"classifier": known, "run": run, "data": data, "explanations": {}}


def known_answer_section(methods: list[str], params: dict) -> None:
    """A task where the right map is known: the class is the quadrant of a bright square."""
    st.header("A test with a known answer")
    st.markdown(
        "On a photo nobody knows the true answer. So here is a task where we do: each image holds a "
        "bright square, its **quadrant is the class**, and a random stripe is there to distract. A "
        "faithful map must put its mass on the square. The number to beat is the square's share of "
        "the image – what a map spreading its mass evenly would score."
    )
    held = st.session_state.get(KNOWN_KEY)
    if st.button("Train the known-answer CNN" if held is None else "Train it again", key="bb_known_train"):
        with shows_errors():
            train_known_answer(epochs=10)
        held = st.session_state[KNOWN_KEY]
    if held is None:
        keep_part("known answer")
        return
    st.caption(held["run"].receipt())
    data, known = held["data"], held["classifier"]
    images, masks = data.x_test[:KNOWN_IMAGES], data.masks_test[:KNOWN_IMAGES]
    targets = data.y_test[:KNOWN_IMAGES].tolist()
    size = (int(images.shape[-2]), int(images.shape[-1]))
    known_explanations = []
    for method in methods:
        sized = params_for_size(method, params[method], size)
        cache_key = f"{method}|{params_key(sized)}"
        if cache_key not in held["explanations"]:
            with shows_errors(stop=False), st.spinner(f"{METHODS[method].title} on {KNOWN_IMAGES} images…"):
                held["explanations"][cache_key] = explainer.explain(known, images, method=method, target=targets,
                                                                    **sized)
        if cache_key in held["explanations"]:
            known_explanations.append(held["explanations"][cache_key])
    shares = [explainer.mask_share(e, masks) for e in known_explanations]
    rows = [{"method": METHODS[s.method].title, "mass inside the square": s.mean_share,
             "square's share of the image": s.mean_area_share,
             "times better than even": s.mean_share / s.mean_area_share} for s in shares]
    st.dataframe(rows, hide_index=True, column_config={
        "mass inside the square": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "square's share of the image": st.column_config.NumberColumn(format="percent"),
        "times better than even": st.column_config.NumberColumn(format="%.1f×"),
    })
    figures = []
    if known_explanations:
        known_grid = compact_overlays(methods_grid(known_explanations, index=0))
        st.plotly_chart(known_grid, width="stretch", key="bb_known_grid")
        figures.append(known_grid)
    keep_part("known answer", figures, tables={"known-answer task: attribution mass inside the square": rows})


def right_and_wrong_section(entry, classifier, method: str, params: dict) -> None:
    """Test images of the model's dataset it gets right and wrong, each with its map for the predicted class."""
    data = dataset(entry.images)
    found = remember(entry, "right_and_wrong", data.name,
                     lambda: right_and_wrong(classifier, data, count=EXAMPLES))
    st.caption(f"{entry.label}: {found.correct} of {found.total} test images right ({found.accuracy:.1%}). "
               f"Maps by **{METHODS[method].title}** for the class it predicted.")
    for title, indices in (("Right", found.right), ("Wrong", found.wrong)):
        if not indices:
            st.info(f"It gets no test image {title.lower()}.")
            continue
        targets = [int(found.predicted[i]) for i in indices]
        slot = f"{indices}|{method}|{params_key(params)}"
        explanation = remember(entry, "examples", slot,
                               partial(explainer.explain, classifier, data.x_test[indices], method=method,
                                       target=targets, **params))

        def overlays(explanation: Explanation = explanation, indices: list[int] = indices,
                     targets: list[int] = targets) -> list:
            drawn = []
            for n, index in enumerate(indices):
                overlay = attribution_overlay(explanation, index=n, height=260)
                overlay.update_layout(title=f"#{index}: true {data.class_names[int(data.y_test[index])]}, "
                                            f"said {data.class_names[targets[n]]}", title_font_size=12)
                drawn.append(compact_overlays(overlay))
            return drawn

        st.markdown(f"**{title}**")
        drawn = remember(entry, "example_figures", slot, overlays, locked=False)
        for column, index, overlay in zip(st.columns(EXAMPLES), indices, drawn):
            column.plotly_chart(overlay, width="stretch", key=f"bb_{title.lower()}_{index}")


@st.fragment
def attributions_fragment(entry, classifier, picked: Picked, key: str, choice) -> None:
    """Methods and their settings, the maps, and what depends on the methods (examples, known answer)."""
    controls, results = st.columns([1.4, 3], gap="large")
    with controls:
        methods = method_picker(key="bb_methods", default=DEFAULT_METHODS)
        params = settings_for(methods, key="bb")
    with results:
        if not methods:
            st.info("Pick at least one attribution method.")
            keep_part("attributions")
            return
        explanations, costs = attributions(entry, classifier, picked, key, methods, params, choice.index)
        slot = f"{key}|{choice.index}|" + "|".join(f"{m}:{params_key(params[m])}" for m in methods)
        grid = remember(entry, "grid", slot, lambda: compact_overlays(methods_grid(explanations)), locked=False)
        st.plotly_chart(grid, width="stretch", key="bb_grid")
        st.dataframe(explanation_table(explanations, costs), hide_index=True)
    keep_part("attributions", [grid], {"methods": [METHODS[e.method].title for e in explanations]},
              {"explanations": [{"method": e.method, "seconds": e.seconds, "device": e.device,
                                 "parameters": json.dumps(e.params)} for e in explanations]})
    if entry.images != PHOTOS:
        st.header("Digits it gets right, and digits it gets wrong" if entry.images == "digits"
                  else "Test images it gets right, and ones it gets wrong")
        with shows_errors(stop=False):
            right_and_wrong_section(entry, classifier, methods[0], params[methods[0]])
    known_answer_section(methods, params)


@st.fragment
def trust_fragment(entry, classifier, picked: Picked, key: str) -> None:
    """The trust section; its widgets rerun only it."""
    render_trust_section(classifier, key="bb_trust", images=trust_images(entry, picked), lock=lock_of(entry),
                         default_methods=tuple(st.session_state.get("bb_methods") or DEFAULT_METHODS),
                         cache_key=f"{entry.key}|{key}")


@st.fragment
def layers_fragment(entry, classifier, picked: Picked, key: str) -> None:
    """Activations of every layer for this input (computed once per model and input), and the first layer's filters."""
    with shows_errors(stop=False):
        _layers(entry, classifier, picked, key)


def _layers(entry, classifier, picked: Picked, key: str) -> None:
    layers = default_layers(classifier)
    captured = remember(entry, "activations", key,
                        lambda: explainer.layer_activations(classifier, picked.image, layers=layers))
    stats = remember(entry, "layer_stats_figure", key, lambda: layer_stats_figure(captured), locked=False)
    st.plotly_chart(stats, width="stretch", key="bb_layer_stats")
    small = entry.images != PHOTOS
    figures = []
    if small:  # small maps: every layer at once
        for tab, layer in zip(st.tabs(layers), layers):
            with tab:
                maps = remember(entry, "maps_figure", f"{key}|{layer}|16",
                                partial(feature_maps_figure, captured, layer, channels=16, cols=8), locked=False)
                st.plotly_chart(maps, width="stretch", key=f"bb_maps_{layer}")
    else:
        layer = st.selectbox("Layer", layers, index=len(layers) // 2, key="bb_layer",
                             help="Top-level blocks spread from the input to the output.")
        maps = remember(entry, "maps_figure", f"{key}|{layer}|12",
                        partial(feature_maps_figure, captured, layer, channels=12, cols=4), locked=False)
        st.plotly_chart(maps, width="stretch", key="bb_maps")
        figures.append(maps)
    first = remember(entry, "first_convolution", "", lambda: first_convolution(classifier), locked=False)
    if first is not None:
        filters = remember(entry, "filters_figure", "", lambda: filters_figure(first), locked=False)
        with st.expander("The first layer's learned filters", expanded=small):
            st.plotly_chart(filters, width="stretch", key="bb_filters")
    keep_part("layers", figures)


@st.fragment
def channels_fragment(entry, classifier, picked: Picked, key: str, choice) -> None:
    """The CAM layer's most important channels and what switching them off does."""
    with shows_errors(stop=False):
        importance = remember(entry, "importance", f"{key}|{choice.index}",
                              lambda: explainer.cam_channel_importance(classifier, picked.image, target=choice.index))
        total = len(importance.top(10_000, image=0))
        count = st.slider("Channels to switch off (the most important first)", 1, min(64, total), min(8, total),
                          key="bb_ablate_k")
        chosen = tuple(importance.top(count, image=0))
        slot = f"{key}|{importance.layer}|{chosen}|{choice.index}"
        intervention = remember(entry, "ablate", slot,
                                lambda: explainer.ablate(classifier, picked.image, layer=importance.layer,
                                                         channels=list(chosen), target=choice.index))
        bars = remember(entry, "importance_figure", f"{key}|{choice.index}",
                        lambda: channel_importance_figure(importance, image=0, k=20), locked=False)
        cut_figure = remember(entry, "intervention_figure", slot, lambda: intervention_figure(intervention),
                              locked=False)
        st.plotly_chart(bars, width="stretch", key="bb_importance")
        st.plotly_chart(cut_figure, width="stretch", key="bb_intervention")
        st.metric(f"P({choice.label}) with {count} channel(s) of {importance.layer} zeroed",
                  f"{intervention.prob_after[0]:.1%}", f"{-intervention.drop[0]:+.1%}", delta_color="off")
        keep_part("channels", [cut_figure], {"ablated layer": importance.layer, "ablated channels": list(chosen),
                                             "probability before": float(intervention.prob_before[0]),
                                             "probability after": float(intervention.prob_after[0])})


st.title("Not a black box")
entry = picked_model()
classifier = classifier_of(entry)
st.markdown(
    f"Looking inside **{entry.label}** – pick another model in the sidebar (your trained and uploaded "
    "models are there too). Ask the network **which pixels drove its answer** – then check that answer: "
    "an attribution map is only worth something if it is *faithful*."
)

chooser, target_column = st.columns([1.4, 3], gap="large")
with chooser:
    picked = pick_input(entry, "bb")
if picked is None:
    st.stop()
    raise SystemExit  # unreachable: st.stop() ends the run
key = input_key(picked.image)
with target_column:
    with shows_errors():
        predictions = remember(entry, "predict", key, partial(lambda image: classifier.predict(image, top_k=5)[0],
                                                              picked.image))
    choice = st.selectbox("Explain the class", predictions, key="bb_target",
                          format_func=lambda p: f"{p.label} – {p.probability:.1%}")
    truth = "" if picked.truth is None else f" (true class: **{classifier.labels[picked.truth]}**)"
    st.caption(f"{classifier.name} says: " + ", ".join(f"**{p.label}** {p.probability:.1%}" for p in predictions[:3])
               + truth)
keep_part("head", numbers={"model": classifier.name, "image": picked.name,
                           "class explained": f"{choice.label} ({choice.index})", "probability": choice.probability})

attributions_fragment(entry, classifier, picked, key, choice)

st.divider()  # the trust section heads itself "Which map can I trust?"
trust_fragment(entry, classifier, picked, key)

st.header("Inside the network")
st.markdown(
    "Attribution maps look at pixels. You can also look *inside*: what every layer computes for this "
    "input, what the first layer has learned to look for, and which channels the decision leans on. "
    "Switching those channels off is an experiment, not an interpretation – watch the probability fall."
)
layers_fragment(entry, classifier, picked, key)
channels_fragment(entry, classifier, picked, key, choice)

offer_report("black_box")
