"""Not a black box: attributions for a photo, each next to the evidence that it is faithful."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st
from common import bundled_classifier, content_key, model_lock, offer_report, pick_image, shows_errors
from PIL import Image

import explainer
from explainer.evidence.faithfulness import FaithfulnessReport, check_faithfulness, mask_share, method_agreement
from explainer.explain.attribution import METHODS, Explanation, explain, list_methods
from explainer.explain.estimate import CostEstimate, estimate_cost
from explainer.inside.activations import Activations, activations, default_layers
from explainer.inside.intervention import ChannelImportance, Intervention, ablate, cam_channel_importance
from explainer.learn.architectures import build_cnn
from explainer.learn.training import EpochStats, fit
from explainer.plots.attribution import attribution_overlay, methods_grid
from explainer.plots.faithfulness import agreement_heatmap, faithfulness_curves, randomization_cascade
from explainer.plots.inside import channel_importance_figure, feature_maps_figure, intervention_figure
from explainer.report import ReportSection

DEFAULT_METHODS = ["gradcam", "saliency"]
#: This learner's known-answer CNN (trained in the session, never shared).
KNOWN_KEY = "bb_known_answer"
KNOWN_IMAGES = 64
#: Methods estimated to take longer than this say so before they run.
SLOW_SECONDS = 1.0


def image_key(image: Image.Image) -> str:
    """Content hash of the decoded pixels: the cache key for everything computed on this image."""
    return content_key(image.tobytes() + f"{image.size}{image.mode}".encode())


@st.cache_data(max_entries=32, show_spinner=False)
def predict_cached(key: str, _image: Image.Image) -> list[explainer.Prediction]:
    """Top-5 predictions of the shared model, cached by image key."""
    with model_lock():
        return bundled_classifier().predict(_image, top_k=5)[0]


@st.cache_data(max_entries=64, show_spinner=False)
def explain_cached(key: str, method: str, target: int, params: str, _image: Image.Image) -> Explanation:
    """One explanation of the shared model, cached by (image hash, method, class, parameters)."""
    with model_lock():
        return explain(bundled_classifier(), _image, method=method, target=target, **json.loads(params))


@st.cache_data(max_entries=64, show_spinner=False)
def cost_cached(key: str, method: str, params: str, _image: Image.Image) -> CostEstimate:
    """How long ``method`` will take on this image (one timed pass of the shared model, then arithmetic)."""
    with model_lock():
        return estimate_cost(bundled_classifier(), _image, method, **json.loads(params))


@st.cache_data(max_entries=64, show_spinner=False)
def evidence_cached(key: str, method: str, target: int, params: str, settings: str, _image: Image.Image,
                    _explanation: Explanation) -> FaithfulnessReport:
    """Deletion/insertion curves and the randomization check for one cached explanation."""
    with model_lock():
        return check_faithfulness(bundled_classifier(), _image, _explanation, **json.loads(settings))


@st.cache_data(max_entries=32, show_spinner=False)
def agreement_cached(
    key: str, target: int, methods: str, _explanations: list[Explanation]
) -> tuple[list[str], np.ndarray]:
    """Rank correlation between the maps of several methods (``methods`` names them and their parameters)."""
    return method_agreement(_explanations)


@st.cache_data(max_entries=32, show_spinner=False)
def activations_cached(key: str, layer: str, _image: Image.Image) -> Activations:
    """One layer's activations, cached by image key."""
    with model_lock():
        return activations(bundled_classifier(), _image, layers=[layer])


@st.cache_data(max_entries=32, show_spinner=False)
def importance_cached(key: str, target: int, _image: Image.Image) -> ChannelImportance:
    """Channel importance at the CAM layer, cached by image key."""
    with model_lock():
        return cam_channel_importance(bundled_classifier(), _image, target=target)


@st.cache_data(max_entries=32, show_spinner=False)
def ablate_cached(key: str, layer: str, channels: tuple[int, ...], target: int, _image: Image.Image) -> Intervention:
    """An ablation of the chosen channels, cached by image key."""
    with model_lock():
        return ablate(bundled_classifier(), _image, layer, list(channels), target=target)


def method_params(method: str) -> dict:
    """The settings a learner can change for ``method`` (the library's defaults otherwise)."""
    defaults = METHODS[method].defaults
    params = {}
    if "n_steps" in defaults:
        params["n_steps"] = st.slider("Integrated Gradients: steps", 8, 128, 32, step=8, key="bb_ig_steps")
    if "n_samples" in defaults:
        params["n_samples"] = st.slider(f"{METHODS[method].title}: noisy samples", 4, 64, int(defaults["n_samples"]),
                                        step=4, key=f"bb_{method}_samples")
    if method == "occlusion":
        params["window"] = st.slider("Occlusion: window (pixels)", 16, 64, 32, step=8, key="bb_occ_window")
        params["stride"] = st.slider("Occlusion: stride (pixels)", 8, 64, 16, step=8, key="bb_occ_stride")
    if method == "feature_ablation":
        params["n_segments"] = st.slider("Feature ablation: superpixels", 10, 100, 30, step=10, key="bb_fa_segments")
    return params


st.title("Not a black box")
st.markdown(
    "Ask the network **which pixels drove its answer** – then check that answer. An attribution "
    "map is only worth something if it is *faithful*: deleting the pixels it ranks highest must "
    "hurt the prediction more than deleting the lowest-ranked (or random) ones, and the map must "
    "change when the network's weights are scrambled."
)
classifier = bundled_classifier()

controls, results = st.columns([1.4, 3], gap="large")
with controls:
    picked = pick_image("bb")
    methods = st.multiselect(
        "Attribution methods", list_methods(), default=DEFAULT_METHODS, key="bb_methods", max_selections=4,
        format_func=lambda name: f"{METHODS[name].title} ({METHODS[name].kind})",
    )
    with st.expander("Method settings"):
        params = {method: method_params(method) for method in methods}
    evidence_on = st.toggle("Measure the evidence", key="bb_evidence",
                            help="Deletion/insertion curves against random orders, and the model-randomization check.")
    if evidence_on:
        steps = st.slider("Curve steps", 5, 50, 20, step=5, key="bb_steps")
        seeds = st.slider("Random orders", 1, 5, 2, key="bb_seeds")
        randomize = st.checkbox("Model-randomization check", value=True, key="bb_randomize")
        settings = {"steps": steps, "random_seeds": seeds, "randomization": randomize, "randomization_steps": 3}

if picked is None:
    st.stop()
name, image = picked
key = image_key(image)
with results:
    with shows_errors():
        predictions = predict_cached(key, image)
    choice = st.selectbox(
        "Explain the class", predictions, key="bb_target",
        format_func=lambda p: f"{p.label} – {p.probability:.1%}",
    )
    st.caption(f"{classifier.name} says: " + ", ".join(f"**{p.label}** {p.probability:.1%}" for p in predictions[:3]))
    if not methods:
        st.info("Pick at least one attribution method.")
        st.stop()

    with shows_errors():
        costs = {m: cost_cached(key, m, json.dumps(params[m], sort_keys=True), image) for m in methods}
    slow = [m for m in methods if costs[m].seconds >= SLOW_SECONDS]
    if slow:
        st.caption("Slow on this machine: " + "; ".join(f"**{METHODS[m].title}** {costs[m].text()}" for m in slow))
    progress = st.progress(0.0)
    explanations: list[Explanation] = []
    for i, method in enumerate(methods):
        progress.progress(i / len(methods),
                          text=f"{METHODS[method].title} ({i + 1}/{len(methods)}), {costs[method].text()}")
        with shows_errors():
            settings_json = json.dumps(params[method], sort_keys=True)
            explanations.append(explain_cached(key, method, choice.index, settings_json, image))
    progress.empty()
    grid = methods_grid(explanations)
    st.plotly_chart(grid, width="stretch", key="bb_grid")
    st.dataframe(
        [{"method": METHODS[e.method].title, "seconds": e.seconds, "estimated seconds": costs[e.method].seconds,
          "model evaluations": costs[e.method].evaluations, "device": e.device, "layer": e.layer or "input",
          "parameters": json.dumps(e.params)} for e in explanations],
        hide_index=True,
    )

figures, tables = [grid], {}
numbers = {"model": classifier.name, "image": name, "class explained": f"{choice.label} ({choice.index})",
           "probability": choice.probability}
if evidence_on:
    st.header("The evidence")
    st.markdown(
        "**Deletion**: pixels are set to the baseline in the order the map ranks them. If the map is "
        "right, deleting the most relevant first (MoRF, red) destroys the prediction fastest and "
        "deleting the least relevant first (LeRF, blue) slowest; grey is random order. "
        "**Insertion** reads the same experiment backwards. Lower MoRF area = better map."
    )
    progress = st.progress(0.0)
    reports: list[FaithfulnessReport] = []
    for i, explanation in enumerate(explanations):
        progress.progress(i / len(explanations),
                          text=f"Evidence for {explanation.spec.title} ({i + 1}/{len(explanations)})…")
        with shows_errors():
            reports.append(evidence_cached(key, explanation.method, choice.index,
                                           json.dumps(params[explanation.method], sort_keys=True),
                                           json.dumps(settings, sort_keys=True), image, explanation))
    progress.empty()
    for explanation, report in zip(explanations, reports):
        left, right = st.columns([1, 2])
        overlay = attribution_overlay(explanation, height=360)
        curves = faithfulness_curves(report)
        left.plotly_chart(overlay, width="stretch", key=f"bb_overlay_{explanation.method}")
        right.plotly_chart(curves, width="stretch", key=f"bb_curves_{explanation.method}")
        verdict = report.verdicts[0]
        marks = {True: ":green[:material/check_circle:]", False: ":red[:material/cancel:]"}
        right.markdown(" · ".join(f"{marks[passed]} {check.replace('_', ' ')}" for check, passed in verdict.items()))
        figures += [overlay, curves]
    rows = [{"method": r.method, **{f"{k} AUC": v for k, v in r.mean_aucs.items()},
             **{k: v for k, v in r.verdicts[0].items()}, "seconds": r.seconds} for r in reports]
    st.dataframe(rows, hide_index=True)
    tables["faithfulness per method"] = rows
    with st.expander("In words"):
        for report in reports:
            st.text(report.summary())
    if settings["randomization"]:
        cascade = randomization_cascade(reports)
        st.plotly_chart(cascade, width="stretch", key="bb_cascade")
        figures.append(cascade)
    numbers.update({f"evidence {k}": v for k, v in settings.items()})
if len(explanations) >= 2:
    names, matrix = agreement_cached(key, choice.index, json.dumps({m: params[m] for m in methods}, sort_keys=True),
                                     explanations)
    agreement = agreement_heatmap([METHODS[n].title for n in names], matrix)
    with st.expander("Do the methods agree with each other?"):
        st.plotly_chart(agreement, width="stretch", key="bb_agreement")
    figures.append(agreement)
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
    known = explainer.Classifier.from_module(model, labels=data.class_names, input_size=data.input_shape[1:],
                                             in_chans=data.input_shape[0], name="known-answer CNN")
    st.session_state[KNOWN_KEY] = {"classifier": known, "run": run, "data": data, "explanations": {}}


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
if held is not None:
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

st.header("Inside the network")
st.markdown(
    "Attribution maps look at pixels. You can also look *inside*: what a layer computes for this "
    "photo, and which of the last layer's channels the decision leans on. Switching those "
    "channels off is an experiment, not an interpretation – watch the probability fall."
)
maps_col, cut_col = st.columns(2, gap="large")
with maps_col:
    layer = st.selectbox("Layer", default_layers(classifier), index=len(default_layers(classifier)) // 2,
                         key="bb_layer", help="Top-level blocks spread from the input to the output.")
    with shows_errors(stop=False):
        captured = activations_cached(key, layer, image)
        maps_figure = feature_maps_figure(captured, layer, channels=12, cols=4)
        st.plotly_chart(maps_figure, width="stretch", key="bb_maps")
        figures.append(maps_figure)
with cut_col:
    with shows_errors(stop=False):
        importance = importance_cached(key, choice.index, image)
        count = st.slider("Channels to switch off (the most important first)", 1, 64, 8, key="bb_ablate_k")
        chosen_channels = tuple(importance.top(count, image=0))
        intervention = ablate_cached(key, importance.layer, chosen_channels, choice.index, image)
        cut_figure = intervention_figure(intervention)
        st.plotly_chart(channel_importance_figure(importance, image=0, k=20), width="stretch", key="bb_importance")
        st.plotly_chart(cut_figure, width="stretch", key="bb_intervention")
        st.metric(f"P({choice.label}) with {count} channel(s) of {importance.layer} zeroed",
                  f"{intervention.prob_after[0]:.1%}", f"{-intervention.drop[0]:+.1%}", delta_color="off")
        figures.append(cut_figure)
        numbers.update({"ablated layer": importance.layer, "ablated channels": list(chosen_channels),
                        "probability before": float(intervention.prob_before[0]),
                        "probability after": float(intervention.prob_after[0])})

tables["explanations"] = [{"method": e.method, "seconds": e.seconds, "device": e.device,
                           "parameters": json.dumps(e.params)} for e in explanations]
offer_report("black_box", ReportSection(
    f"Why {choice.label}? ({name})",
    text=f"{classifier.name} explained with {', '.join(METHODS[e.method].title for e in explanations)}.",
    figures=figures, numbers=numbers, tables=tables,
))
