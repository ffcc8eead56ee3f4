"""Not a black box: for whichever model is picked – attributions with evidence, every layer, channels, ablation."""

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
    first_layer_filters,
    input_key,
    layer_activations,
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

import explainer
from explainer.attribution.estimate import estimate_cost
from explainer.attribution.explanation import METHODS, Explanation, explain
from explainer.evidence.faithfulness import mask_share
from explainer.inside.activations import default_layers
from explainer.learn.architectures import build_cnn
from explainer.learn.training import EpochStats, fit
from explainer.plots.attribution import attribution_overlay, methods_grid
from explainer.plots.inside import (
    channel_importance_figure,
    feature_maps_figure,
    intervention_figure,
    layer_stats_figure,
)
from explainer.report import ReportSection

DEFAULT_METHODS = ["gradcam", "saliency"]
#: This learner's known-answer CNN (trained in the session, never shared).
KNOWN_KEY = "bb_known_answer"
KNOWN_IMAGES = 64
#: Methods estimated to take longer than this say so before they run.
SLOW_SECONDS = 1.0
#: Digits it gets right / wrong shown with their maps (dataset models).
EXAMPLES = 4


def attributions(entry, classifier, picked: Picked, key: str, methods: list[str], params: dict, target: int
                 ) -> list[Explanation]:
    """One explanation per method (estimated first, slow ones announced), remembered per model and input."""
    image = picked.image
    costs = {m: remember(entry, "cost", f"{key}|{m}|{params_key(params[m])}",
                         partial(estimate_cost, classifier, image, m, **params[m])) for m in methods}
    slow = [m for m in methods if costs[m].seconds >= SLOW_SECONDS]
    if slow:
        st.caption("Slow on this machine: " + "; ".join(f"**{METHODS[m].title}** {costs[m].text()}" for m in slow))
    progress = st.progress(0.0)
    explanations = []
    for i, method in enumerate(methods):
        progress.progress(i / len(methods), text=f"{METHODS[method].title} ({i + 1}/{len(methods)}), "
                                                 f"{costs[method].text()}")
        with shows_errors():
            explanations.append(remember(
                entry, "explain", f"{key}|{method}|{target}|{params_key(params[method])}",
                partial(explain, classifier, image, method=method, target=target, **params[method]),
            ))
    progress.empty()
    st.session_state["bb_costs"] = costs
    return explanations


def explanation_table(explanations: list[Explanation]) -> list[dict]:
    """What each map cost: measured seconds next to the estimate."""
    costs = st.session_state.get("bb_costs", {})
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
    """Train a small CNN on the known-answer images, one progress update per epoch."""
    data = explainer.load_dataset("known_answer")
    model = build_cnn(data.input_shape, data.num_classes)
    bar = st.progress(0.0, text="Training…")

    def on_epoch(stats: EpochStats) -> None:
        bar.progress(stats.epoch / epochs,
                     text=f"epoch {stats.epoch}/{epochs}: test accuracy {stats.test_accuracy:.1%}")

    run = fit(model, data, epochs=epochs, target_accuracy=0.95, callback=on_epoch, device="cpu")
    bar.empty()
    known = explainer.Classifier.from_module(model, labels=data.class_names,
                                             input_size=(data.input_shape[1], data.input_shape[2]),
                                             in_chans=data.input_shape[0], name="known-answer CNN")
    st.session_state[KNOWN_KEY] = {"classifier": known, "run": run, "data": data, "explanations": {}}


def known_answer_section(methods: list[str], params: dict, figures: list, tables: dict) -> None:
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
        return
    st.caption(held["run"].receipt())
    data, known = held["data"], held["classifier"]
    images, masks = data.x_test[:KNOWN_IMAGES], data.masks_test[:KNOWN_IMAGES]
    targets = data.y_test[:KNOWN_IMAGES].tolist()
    known_explanations = []
    for method in methods:
        cache_key = f"{method}|{json.dumps(params[method], sort_keys=True)}"
        if cache_key not in held["explanations"]:
            with shows_errors(stop=False), st.spinner(f"{METHODS[method].title} on {KNOWN_IMAGES} images…"):
                sized = {k: v for k, v in params[method].items() if k not in ("window", "stride")}  # 32 px images
                held["explanations"][cache_key] = explain(known, images, method=method, target=targets, **sized)
        if cache_key in held["explanations"]:
            known_explanations.append(held["explanations"][cache_key])
    shares = [mask_share(e, masks) for e in known_explanations]
    rows = [{"method": METHODS[s.method].title, "mass inside the square": s.mean_share,
             "square's share of the image": s.mean_area_share,
             "times better than even": s.mean_share / s.mean_area_share} for s in shares]
    st.dataframe(rows, hide_index=True, column_config={
        "mass inside the square": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "square's share of the image": st.column_config.NumberColumn(format="percent"),
        "times better than even": st.column_config.NumberColumn(format="%.1f×"),
    })
    if known_explanations:
        known_grid = methods_grid(known_explanations, index=0)
        st.plotly_chart(known_grid, width="stretch", key="bb_known_grid")
        figures.append(known_grid)
        tables["known-answer task: attribution mass inside the square"] = rows


def layers_section(entry, classifier, picked: Picked, key: str, figures: list) -> None:
    """Activations of every layer for this input, and the first layer's learned filters."""
    layers = default_layers(classifier)
    captured = remember(entry, "activations", key,
                        lambda: layer_activations(classifier, picked.image, layers=layers))
    st.plotly_chart(layer_stats_figure(captured), width="stretch", key="bb_layer_stats")
    small = entry.images != PHOTOS
    if small:  # small maps: every layer at once
        for tab, layer in zip(st.tabs(layers), layers):
            with tab:
                st.plotly_chart(feature_maps_figure(captured, layer, channels=16, cols=8), width="stretch",
                                key=f"bb_maps_{layer}")
    else:
        layer = st.selectbox("Layer", layers, index=len(layers) // 2, key="bb_layer",
                             help="Top-level blocks spread from the input to the output.")
        maps_figure = feature_maps_figure(captured, layer, channels=12, cols=4)
        st.plotly_chart(maps_figure, width="stretch", key="bb_maps")
        figures.append(maps_figure)
    filters = first_layer_filters(classifier)
    if filters is not None:
        with st.expander("The first layer's learned filters", expanded=small):
            st.plotly_chart(filters, width="stretch", key="bb_filters")


def channels_section(entry, classifier, picked: Picked, key: str, choice, numbers: dict, figures: list) -> None:
    """The CAM layer's most important channels and what switching them off does."""
    with shows_errors(stop=False):
        importance = remember(entry, "importance", f"{key}|{choice.index}",
                              lambda: explainer.cam_channel_importance(classifier, picked.image, target=choice.index))
        total = len(importance.top(10_000, image=0))
        count = st.slider("Channels to switch off (the most important first)", 1, min(64, total), min(8, total),
                          key="bb_ablate_k")
        chosen_channels = tuple(importance.top(count, image=0))
        intervention = remember(entry, "ablate", f"{key}|{importance.layer}|{chosen_channels}|{choice.index}",
                                lambda: explainer.ablate(classifier, picked.image, layer=importance.layer,
                                                         channels=list(chosen_channels), target=choice.index))
        cut_figure = intervention_figure(intervention)
        st.plotly_chart(channel_importance_figure(importance, image=0, k=20), width="stretch", key="bb_importance")
        st.plotly_chart(cut_figure, width="stretch", key="bb_intervention")
        st.metric(f"P({choice.label}) with {count} channel(s) of {importance.layer} zeroed",
                  f"{intervention.prob_after[0]:.1%}", f"{-intervention.drop[0]:+.1%}", delta_color="off")
        figures.append(cut_figure)
        numbers.update({"ablated layer": importance.layer, "ablated channels": list(chosen_channels),
                        "probability before": float(intervention.prob_before[0]),
                        "probability after": float(intervention.prob_after[0])})


def right_and_wrong(entry, classifier, method: str, params: dict) -> list[int]:
    """Test images of the model's dataset it gets right and wrong, each with its map for the predicted class."""
    data = dataset(entry.images)
    predicted = remember(entry, "test_predictions", data.name,
                         lambda: classifier.logits(data.x_test).argmax(dim=1))
    truth = data.y_test
    right = [int(i) for i in (predicted == truth).nonzero().flatten()[:EXAMPLES]]
    wrong = [int(i) for i in (predicted != truth).nonzero().flatten()[:EXAMPLES]]
    accuracy = float((predicted == truth).float().mean())
    st.caption(f"{entry.label}: {int((predicted == truth).sum())} of {len(truth)} test images right "
               f"({accuracy:.1%}). Maps by **{METHODS[method].title}** for the class it predicted.")
    for title, indices in (("Right", right), ("Wrong", wrong)):
        if not indices:
            st.info(f"It gets no test image {title.lower()}.")
            continue
        targets = [int(predicted[i]) for i in indices]
        explanation = remember(entry, "examples", f"{indices}|{method}|{params_key(params)}",
                               partial(explain, classifier, data.x_test[indices], method=method, target=targets,
                                       **params))
        st.markdown(f"**{title}**")
        for column, (n, index) in zip(st.columns(EXAMPLES), enumerate(indices)):
            overlay = attribution_overlay(explanation, index=n, height=260)
            overlay.update_layout(title=f"#{index}: true {data.class_names[int(truth[index])]}, "
                                        f"said {data.class_names[targets[n]]}", title_font_size=12)
            column.plotly_chart(overlay, width="stretch", key=f"bb_{title.lower()}_{index}")
    return right + wrong


st.title("Not a black box")
entry = picked_model()
classifier = classifier_of(entry)
st.markdown(
    f"Looking inside **{entry.label}** – pick another model in the sidebar (your trained and uploaded "
    "models are there too). Ask the network **which pixels drove its answer** – then check that answer: "
    "an attribution map is only worth something if it is *faithful*."
)

controls, results = st.columns([1.4, 3], gap="large")
with controls:
    picked = pick_input(entry, "bb")
    methods = method_picker(key="bb_methods", default=DEFAULT_METHODS)
    params = settings_for(methods, key="bb")

if picked is None:
    st.stop()
    raise SystemExit  # unreachable: st.stop() ends the run
key = input_key(picked.image)
with results:
    with shows_errors():
        predictions = remember(entry, "predict", key, partial(lambda image: classifier.predict(image, top_k=5)[0],
                                                              picked.image))
    choice = st.selectbox("Explain the class", predictions, key="bb_target",
                          format_func=lambda p: f"{p.label} – {p.probability:.1%}")
    truth = "" if picked.truth is None else f" (true class: **{classifier.labels[picked.truth]}**)"
    st.caption(f"{classifier.name} says: " + ", ".join(f"**{p.label}** {p.probability:.1%}" for p in predictions[:3])
               + truth)
    if not methods:
        st.info("Pick at least one attribution method.")
        st.stop()
    explanations = attributions(entry, classifier, picked, key, methods, params, choice.index)
    grid = methods_grid(explanations)
    st.plotly_chart(grid, width="stretch", key="bb_grid")
    st.dataframe(explanation_table(explanations), hide_index=True)

figures: list = [grid]
tables: dict[str, list] = {}
numbers = {"model": classifier.name, "image": picked.name, "class explained": f"{choice.label} ({choice.index})",
           "probability": choice.probability}

st.divider()  # the trust section heads itself "Which map can I trust?"
render_trust_section(classifier, key="bb_trust", images=trust_images(entry, picked), lock=lock_of(entry),
                     default_methods=tuple(methods))

if entry.images != PHOTOS:
    st.header("Digits it gets right, and digits it gets wrong" if entry.images == "digits"
              else "Test images it gets right, and ones it gets wrong")
    with shows_errors(stop=False):
        right_and_wrong(entry, classifier, methods[0], params[methods[0]])

st.header("Inside the network")
st.markdown(
    "Attribution maps look at pixels. You can also look *inside*: what every layer computes for this "
    "input, what the first layer has learned to look for, and which channels the decision leans on. "
    "Switching those channels off is an experiment, not an interpretation – watch the probability fall."
)
with shows_errors(stop=False):
    layers_section(entry, classifier, picked, key, figures)
channels_section(entry, classifier, picked, key, choice, numbers, figures)
known_answer_section(methods, params, figures, tables)

tables["explanations"] = [{"method": e.method, "seconds": e.seconds, "device": e.device,
                           "parameters": json.dumps(e.params)} for e in explanations]
offer_report("black_box", ReportSection(
    f"Why {choice.label}? ({picked.name})",
    text=f"{classifier.name} explained with {', '.join(METHODS[e.method].title for e in explanations)}.",
    figures=figures, numbers=numbers, tables=tables,
))
