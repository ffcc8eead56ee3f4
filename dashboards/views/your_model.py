"""Your model: upload a checkpoint (weights only) and an image, see the prediction and why."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import streamlit as st
from common import content_key, offer_report, pick_image, shows_errors

import explainer
from explainer.explain.attribution import METHODS, list_methods
from explainer.plots.attribution import attribution_overlay
from explainer.report import ReportSection

#: The learner's loaded model lives here – in this session only, never in a shared cache.
STATE_KEY = "your_model"
#: Explanations of the learner's model, by (model, image, method, class).
EXPLAINED_KEY = "your_model_explanations"
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "bin"]

st.title("Your model")
st.markdown(
    "Bring your own PyTorch image classifier: upload its **weights** (a `.safetensors` file, or a "
    "state dict saved with `torch.save(model.state_dict(), 'weights.pt')`) and name its "
    "architecture (any [timm](https://huggingface.co/docs/timm) name such as `resnet18`, or "
    "`torchvision:resnet18`). Whole pickled models are refused: unpickling can run arbitrary code."
)


def load_uploaded(data: bytes, filename: str, arch: str, labels: list[str]) -> explainer.Classifier:
    """Load the uploaded weights once per (content, arch, labels) and keep them in this session."""
    key = "|".join([content_key(data), arch, *labels])
    held = st.session_state.get(STATE_KEY)
    if held is not None and held["key"] == key:
        return held["classifier"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("upload_" + re.sub(r"[^\w.-]", "_", Path(filename).name))
        path.write_bytes(data)
        classifier = explainer.load_model(path, arch=arch, labels=labels or None)
    st.session_state[STATE_KEY] = {"key": key, "classifier": classifier, "file": filename}
    st.session_state[EXPLAINED_KEY] = {}
    return classifier


left, right = st.columns(2)
with left:
    limit_mb = int(st.get_option("server.maxUploadSize"))
    checkpoint = st.file_uploader(
        f"Checkpoint (weights only, at most {limit_mb} MB)", type=CHECKPOINT_TYPES, key="ym_checkpoint"
    )
    arch = st.text_input("Architecture", value="resnet18", key="ym_arch",
                         help="A timm architecture name or torchvision:NAME matching the weights.").strip()
    labels_text = st.text_area("Class names (optional, one per line, in output order)", key="ym_labels")
    labels = [line.strip() for line in labels_text.splitlines() if line.strip()]
with right:
    picked = pick_image("ym")

if checkpoint is None:
    st.info("Upload a checkpoint to continue.")
    st.stop()
data = checkpoint.getvalue()
if len(data) > limit_mb * 1_000_000:
    st.error(f"{checkpoint.name} is {len(data) / 1e6:.0f} MB; the limit is {limit_mb} MB.")
    st.stop()
if not arch:
    st.error("Name the architecture the weights belong to, e.g. resnet18.")
    st.stop()

with st.spinner(f"Loading {checkpoint.name} as {arch}…"), shows_errors():
    classifier = load_uploaded(data, checkpoint.name, arch, labels)
st.success(
    f"Loaded **{checkpoint.name}** as `{classifier.name}`: {classifier.num_classes} classes, "
    f"input {classifier.input_size[0]}×{classifier.input_size[1]}, on {classifier.device}."
)

if picked is None:
    st.stop()
image_name, image = picked
with shows_errors():
    predictions = classifier.predict(image, top_k=5)[0]
st.subheader(f"What it sees in {image_name}")
st.dataframe(
    [{"class": p.label, "index": p.index, "probability": p.probability} for p in predictions],
    column_config={"probability": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)},
    hide_index=True,
)

st.subheader("Why?")
fast = [name for name in list_methods() if METHODS[name].kind != "perturbation"]
method = st.selectbox("Attribution method", fast, index=fast.index("gradcam"), key="ym_method",
                      format_func=lambda name: METHODS[name].title)
target = predictions[0]
cache = st.session_state.setdefault(EXPLAINED_KEY, {})
cache_key = (st.session_state[STATE_KEY]["key"], content_key(image.tobytes()), method, target.index)
if cache_key not in cache:
    with st.spinner(f"{METHODS[method].title} on {classifier.name}…"), shows_errors():
        cache[cache_key] = explainer.explain(classifier, image, method=method, target=target.index)
explanation = cache[cache_key]
overlay = attribution_overlay(explanation)
st.plotly_chart(overlay, width="stretch", key="ym_overlay")
st.caption(f"{METHODS[method].description} Computed in {explanation.seconds:.2f} s on {explanation.device}"
           f"{f', layer {explanation.layer}' if explanation.layer else ''}.")
offer_report("your_model", ReportSection(
    f"{classifier.name} on {image_name}: why {target.label}?",
    figures=[overlay],
    numbers={"checkpoint": st.session_state[STATE_KEY]["file"], "architecture": classifier.name,
             "method": method, "layer": explanation.layer or "input", "seconds": explanation.seconds,
             "device": explanation.device, **{f"P({p.label})": p.probability for p in predictions}},
))
