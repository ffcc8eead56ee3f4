"""Where does the answer live? Activation patching and the concepts of the predicted class, for the picked model.

On first load: the picked model's input (the cat photo for the bundled network) against its blurred copy,
patched at every position of the Grad-CAM layer, the concepts of that layer over the sample inputs, and a
feature picture of the channel the prediction relies on most beside its natural exemplars. Every number comes
from ``explainer.patch`` / ``corrupt`` / ``concepts`` / ``visualize_channel`` (the CLI's ``explainer patch``,
``concepts`` and ``feature`` print the same). Results are remembered per model and input.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from common import (
    PHOTOS,
    classifier_of,
    dataset,
    input_key,
    pick_input,
    picked_model,
    remember,
    sample_photos,
    shows_errors,
)

from explainer import cam_channel_importance, concept_sets, concepts, corrupt, patch, tcav, visualize_channel
from explainer.models.layers import feature_layers, find_cam_layer
from explainer.plots.inside import feature_visualization_figure
from explainer.plots.mechanisms import concepts_figure, patch_figure, tcav_figure

#: Concepts extracted on the page (a few, so the first view is quick).
CONCEPTS = 4
#: Dataset images the concepts of a dataset model are extracted from.
DATASET_IMAGES = 16
#: The feature picture's first view: optimization steps and size (pixels); the smallest input it can be drawn at.
FEATURE_STEPS, FEATURE_SIZE, FEATURE_MIN_SIZE = 32, 96, 16
#: Dataset test images searched for a dataset model's natural exemplars.
FEATURE_EXEMPLARS = 200
#: TCAV on the page: concept and random images (the permutation test needs 4 × as many random), inputs scored.
TCAV_CONCEPT, TCAV_RANDOM, TCAV_INPUTS = 12, 48, 32

st.title("Where does the answer live?")
st.markdown(
    "**Activation patching** runs a corrupted copy of the image, puts back one part of the network's "
    "activation from the clean run, and measures how much of the answer returns (1 = all of it, 0 = none). "
    "**Concepts** factorise a layer's activations over image crops into a few recurring patterns and measure "
    "how much the class loses when each is removed. Details and limits: `docs/mechanisms.md`."
)

entry = picked_model()
with shows_errors():
    classifier = classifier_of(entry)
    cam_layer = find_cam_layer(classifier).name
    layers = list(feature_layers(classifier))

picked = pick_input(entry, "mechanisms")
if picked is None:
    st.stop()

left, right = st.columns(2)
how = left.selectbox("Corrupt it by", ["blur", "noise", "fill"], key="mechanisms_corruption",
                     help="blur: a strong Gaussian blur; noise: seeded Gaussian noise; fill: the mean colour")
granularity = right.radio("Patch", ["position", "layer"], horizontal=True, key="mechanisms_granularity",
                          help=f"position: each position of {cam_layer}; layer: every feature layer, whole")
if granularity == "layer":
    st.caption(f"{len(layers)} layers: {len(layers)} patched forward passes (the position map needs one per position).")

with shows_errors():
    batch = picked.image[None] if hasattr(picked.image, "dim") else [picked.image]  # a pixel tensor or a photo
    slot = f"{input_key(picked.image)}|{how}|{granularity}"

    def run_patch():
        """Corrupt the input and patch it (the library's calls)."""
        corrupted = corrupt(classifier, batch, how)
        return patch(classifier, batch, corrupted, layers=None if granularity == "position" else layers,
                     granularity=granularity, progress=False)

    with st.spinner("Patching…"):
        result = remember(entry, "patch", slot, run_patch)
    st.markdown(f"Target **{result.target_labels[0]}**: logit {result.clean_logit[0]:.3g} on the clean image, "
                f"{result.corrupted_logit[0]:.3g} on the {how} copy. {result.verdict()}")
    st.plotly_chart(patch_figure(result), width="stretch", key="mechanisms_patch")

st.subheader(f"Concepts of {cam_layer}")
with shows_errors():
    if entry.images == PHOTOS:
        images: Any = list(sample_photos().values())
        source = "the sample photos"
    else:
        data = dataset(entry.images)
        images, source = data.x_test[:DATASET_IMAGES], f"{DATASET_IMAGES} {data.name} test images"

    def run_concepts():
        """The layer's concepts over the sample inputs (the library's call)."""
        return concepts(classifier, images, layer=cam_layer, n_concepts=CONCEPTS, progress=False)

    with st.spinner("Finding concepts…"):
        found = remember(entry, "concepts", f"{cam_layer}|{entry.images}|{CONCEPTS}", run_concepts)
    st.markdown(f"{CONCEPTS} concepts from {source} (each cut into 2×2 crops). {found.verdict()} "
                "Importance is each image's own predicted class losing logit when the concept is removed.")
    st.plotly_chart(concepts_figure(found), width="stretch", key="mechanisms_concepts")

st.subheader("Is the class sensitive to a concept? (TCAV)")
with shows_errors():
    with st.spinner("Predicting…"):
        predicted = remember(entry, "prediction", input_key(picked.image),
                             lambda: classifier.predict(batch, top_k=1)[0][0])
    if entry.images == PHOTOS:  # concepts shown by texture crops; the sample photos are scored for the class
        concept_data, tcav_inputs, tcav_target = dataset("textures"), images, predicted.index
        scored = f"the {len(images)} sample photos"
    else:  # the class's own training images as the concept; its test images are scored
        concept_data = dataset(entry.images)
        tcav_target = predicted.index
        tcav_inputs = concept_data.x_test[concept_data.y_test == tcav_target][:TCAV_INPUTS]
        scored = f"{len(tcav_inputs)} {concept_data.name} test images of that class"
    concept_name = st.selectbox(f"Concept ({TCAV_CONCEPT} {concept_data.name} training images of one class)",
                                concept_data.class_names, key=f"mechanisms_tcav_concept_{concept_data.name}",
                                index=tcav_target if entry.images != PHOTOS else 0)

    def run_tcav():
        """TCAV of the chosen concept for the predicted class at the Grad-CAM layer (the library's calls)."""
        concept_images, random_images = concept_sets(concept_data, concept_name, size=TCAV_CONCEPT,
                                                     random=TCAV_RANDOM)
        return tcav(classifier, concept_images, random_images, layers=[cam_layer], target=tcav_target,
                    inputs=tcav_inputs, progress=False)

    with st.spinner(f"TCAV: 10 reference sets, 99 random subsets at {cam_layer}…"):
        tested = remember(entry, "tcav", f"{cam_layer}|{entry.images}|{concept_name}|{tcav_target}", run_tcav)
    st.markdown(f"Concept **{concept_name}** against {TCAV_RANDOM} random {concept_data.name} training images, "
                f"for **{predicted.label}**, scored on {scored}. {tested.verdict()}")
    st.plotly_chart(tcav_figure(tested), width="stretch", key="mechanisms_tcav")

st.subheader("A feature picture, checked against real images")
st.markdown(
    "An image optimized to excite one channel (Lucid-style) can be fooled by patterns no real image has. "
    "Beside it: the channel's strongest natural exemplars, how far the picture reaches beyond them, and whether "
    "the rest of the layer sees it as more like them than like other images – only then is it a fair picture of "
    "the channel (`explainer feature`, `docs/mechanisms.md`)."
)
with shows_errors():
    if min(classifier.input_size) < FEATURE_MIN_SIZE:
        st.caption(f"This model's input ({classifier.input_size[0]} px) is smaller than the {FEATURE_MIN_SIZE} px a "
                   "feature picture needs.")
        st.stop()
    importance = remember(entry, "channel_importance", f"{input_key(picked.image)}|{cam_layer}",
                          lambda: cam_channel_importance(classifier, batch, layer=cam_layer))
    left, middle, right = st.columns(3)
    feature_layer = left.selectbox("Layer", layers, index=layers.index(cam_layer), key="mechanisms_feature_layer")
    default_channel = importance.top(1, image=0)[0] if feature_layer == cam_layer else 0
    channel = int(middle.number_input("Channel", min_value=0, value=default_channel, step=1,
                                      key=f"mechanisms_feature_channel_{feature_layer}",
                                      help=f"default: the channel of {cam_layer} the prediction relies on most"))
    steps = int(right.slider("Optimization steps", 16, 192, FEATURE_STEPS, step=16, key="mechanisms_feature_steps"))
    size = min(FEATURE_SIZE, max(classifier.input_size)) if any(
        info.kind == "tokens" for info in feature_layers(classifier).values()) else FEATURE_SIZE
    exemplars: Any = None if entry.images == PHOTOS else dataset(entry.images).x_test[:FEATURE_EXEMPLARS]

    def run_feature():
        """The picture and its check (the library's call)."""
        return visualize_channel(classifier, layer=feature_layer, channel=channel, steps=steps, size=size,
                                 exemplars=exemplars, progress=False)

    with st.spinner(f"Optimizing a picture of {feature_layer} channel {channel} ({steps} steps)…"):
        picture = remember(entry, "feature", f"{feature_layer}|{channel}|{steps}|{size}|{entry.images}", run_feature)
    st.markdown(picture.verdict())
    st.plotly_chart(feature_visualization_figure(picture), width="stretch", key="mechanisms_feature")
