"""Your model: what is loaded (the model picked in the sidebar), what it sees and why – and bring your own weights."""

from __future__ import annotations

import streamlit as st
from common import (
    add_learner_model,
    classifier_of,
    content_key,
    input_key,
    learner_models,
    offer_report,
    pick_input,
    picked_model,
    remember,
    request_model,
    shows_errors,
)
from method_settings import single_method_picker

import explainer
from explainer import METHODS, ReportSection
from explainer.plots.attribution import attribution_overlay
from explainer.plots.compact import compact_overlays
from explainer.plots.inside import anatomy_figure

#: The message about the latest upload (shown again after the rerun that selects it).
LOADED_KEY = "ym_loaded"
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "bin"]


def load_upload(data: bytes, filename: str, arch: str, labels: list[str]) -> str:
    """Load uploaded weights (bytes, no temporary file) once per content, architecture and labels; its picker key."""
    identity = "|".join([content_key(data), arch, *labels])
    for key, held in learner_models().items():
        if held.get("identity") == identity:
            return key
    classifier = explainer.load_model(data, arch=arch, labels=labels or None, device="cpu")
    label = f"Your upload: {filename} as {arch}"
    return add_learner_model(label, "uploaded", classifier, identity=identity, file=filename,
                             note=f"uploaded by you in this session ({len(data) / 1e6:.1f} MB)")


def upload_panel() -> None:
    """Upload weights plus the architecture name; a loaded model joins the picker and is picked."""
    st.header("Bring your own model")
    st.markdown(
        "Upload a PyTorch image classifier's **weights** (a `.safetensors` file, or a state dict saved with "
        "`torch.save(model.state_dict(), 'weights.pt')`) and name its architecture (any "
        "[timm](https://huggingface.co/docs/timm) name such as `resnet18`, or `torchvision:resnet18`). Whole "
        "pickled models are refused: unpickling can run arbitrary code. It joins the model picker – in your "
        "session only – and every page can look inside it."
    )
    left, right = st.columns(2)
    limit_mb = int(st.get_option("server.maxUploadSize"))
    with left:
        checkpoint = st.file_uploader(f"Checkpoint (weights only, at most {limit_mb} MB)", type=CHECKPOINT_TYPES,
                                      key="ym_checkpoint")
    with right:
        arch = st.text_input("Architecture", value="resnet18", key="ym_arch",
                             help="A timm architecture name or torchvision:NAME matching the weights.").strip()
        labels_text = st.text_area("Class names (optional, one per line, in output order)", key="ym_labels")
    labels = [line.strip() for line in labels_text.splitlines() if line.strip()]
    if checkpoint is None:
        return
    data = checkpoint.getvalue()
    if len(data) > limit_mb * 1_000_000:
        st.error(f"{checkpoint.name} is {len(data) / 1e6:.0f} MB; the limit is {limit_mb} MB.")
        return
    if not arch:
        st.error("Name the architecture the weights belong to, e.g. resnet18.")
        return
    with st.spinner(f"Loading {checkpoint.name} as {arch}…"), shows_errors(stop=False):
        key = load_upload(data, checkpoint.name, arch, labels)
        if st.session_state.get("model_choice") != key:
            classifier = learner_models()[key]["classifier"]
            st.session_state[LOADED_KEY] = (
                f"Loaded **{checkpoint.name}** as `{classifier.name}`: {classifier.num_classes} classes, input "
                f"{classifier.input_size[0]}×{classifier.input_size[1]}, on {classifier.device}. It is now the "
                "picked model.")
            request_model(key)
            st.rerun()


st.title("Your model")
entry = picked_model()
classifier = classifier_of(entry)
if LOADED_KEY in st.session_state:
    st.success(st.session_state.pop(LOADED_KEY))
st.markdown(f"Loaded now: **{entry.label}** – {entry.note}. Pick another in the sidebar, train one on "
            "*Train on your laptop*, or upload your own below.")

facts = remember(entry, "anatomy", "", lambda: explainer.model_anatomy(classifier))
cols = st.columns(4)
cols[0].metric("Classes", f"{classifier.num_classes:,}")
cols[1].metric("Input", f"{classifier.in_chans} × {classifier.input_size[0]} × {classifier.input_size[1]}")
cols[2].metric("Parameters", f"{facts.total_params / 1e6:.2f} M" if facts.total_params >= 1e5 else f"{facts.total_params:,}")
cols[3].metric("Device", str(classifier.device))
anatomy_chart = anatomy_figure(facts)
st.plotly_chart(anatomy_chart, width="stretch", key="ym_anatomy")

picked = pick_input(entry, "ym")
figures = [anatomy_chart]
if picked is not None:
    image = picked.image
    key = input_key(image)
    with shows_errors():
        predictions = remember(entry, "predict", key, lambda: classifier.predict(image, top_k=5)[0])
    st.subheader(f"What it sees in {picked.name}")
    left, right = st.columns([1, 2], gap="large")
    left.dataframe(
        [{"class": p.label, "index": p.index, "probability": p.probability} for p in predictions],
        column_config={"probability": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)},
        hide_index=True,
    )
    with left:
        method = single_method_picker("Why? (attribution method)", key="ym_method", default="gradcam",
                                      kinds=["cam", "gradient"])
    target = predictions[0]
    with shows_errors():
        explanation = remember(entry, "explain", f"{key}|{method}|{target.index}|{{}}",
                               lambda: explainer.explain(classifier, image, method=method, target=target.index))
    overlay = compact_overlays(attribution_overlay(explanation))
    right.plotly_chart(overlay, width="stretch", key="ym_overlay")
    right.caption(f"{METHODS[method].description} Computed in {explanation.seconds:.2f} s on {explanation.device}"
                  f"{f', layer {explanation.layer}' if explanation.layer else ''}.")
    figures.append(overlay)
    offer_report("your_model", ReportSection(
        f"{classifier.name} on {picked.name}: why {target.label}?", figures=figures,
        numbers={"model": entry.label, "architecture": classifier.name, "method": method,
                 "layer": explanation.layer or "input", "seconds": explanation.seconds, "device": explanation.device,
                 **{f"P({p.label})": p.probability for p in predictions}},
    ))

upload_panel()
