"""Small data is enough (sometimes): transfer learning against training from scratch, 1–50 examples per class."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
from common import offer_report, shows_errors

import explainer
from explainer.plots.transfer import transfer_curve
from explainer.report import ReportSection
from explainer.transfer.experiment import DEFAULT_SHOTS, STRATEGIES, TransferResults

#: This learner's latest comparison (session only).
RESULTS_KEY = "transfer_results"
DATASETS = {
    "textures": "six texture photos, 64×64 crops – natural images, where ImageNet features should help",
    "digits": "8×8 handwritten digits – the counter-example: tiny images unlike ImageNet photos",
    "known_answer": "synthetic squares in quadrants – the class is *where*, not *what*",
}

def load_results(path: Path) -> TransferResults:
    """A ``compare_transfer(out=...)`` file reopened by the library; an unfinished one is completed, with progress."""
    progress = st.progress(0.0, text=f"Reading {path.name}…")
    results = explainer.open_results(
        path, callback=lambda done, total, row: progress.progress(done / total, text=f"completing run {done}/{total}…"),
    )
    progress.empty()
    return results


st.title("Small data is enough (sometimes)")
st.markdown(
    "“You need huge datasets.” Not if someone else already did the heavy lifting: a network "
    "pretrained on ImageNet has learned edges, textures and shapes, and a **linear probe** on its "
    "features – or a short **fine-tune** – can learn a new task from a handful of labelled examples. "
    "The same experiment also shows where that fails. Every strategy trains on the *same* few-shot "
    "sample and is scored on the full test split."
)

live_tab, file_tab = st.tabs(["Run it live", "Open a finished results file"])
with file_tab:
    st.markdown("Results written by `explainer transfer --out FILE` or `compare_transfer(..., out=FILE)` "
                "(`.jsonl` or `.json`), uploaded or as a path on this machine.")
    upload = st.file_uploader("Results file", type=["jsonl", "json"], key="sd_upload")
    typed = st.text_input("…or its path", key="sd_path", placeholder="runs/textures.jsonl")
    if st.button("Open", key="sd_open", icon=":material/folder_open:"):
        with shows_errors():
            if upload is not None:
                with tempfile.TemporaryDirectory() as folder:
                    copy = Path(folder) / f"upload{Path(upload.name).suffix.lower()}"
                    copy.write_bytes(upload.getvalue())
                    st.session_state[RESULTS_KEY] = load_results(copy)
            elif typed.strip():
                path = Path(typed.strip()).expanduser()
                if path.suffix.lower() not in (".json", ".jsonl") or not path.is_file():
                    raise explainer.InputError(f"{path} is not a .jsonl or .json results file on this machine.")
                st.session_state[RESULTS_KEY] = load_results(path)
            else:
                raise explainer.InputError("Upload a results file or type its path first.")

with live_tab, st.form("sd_form"):
    left, right = st.columns(2, gap="large")
    with left:
        dataset = st.selectbox("Dataset", list(DATASETS), format_func=lambda n: f"{n} – {DATASETS[n]}",
                               key="sd_dataset")
        shots = st.multiselect("Labelled examples per class", list(DEFAULT_SHOTS), default=[1, 5, 20], key="sd_shots")
        seeds = st.slider("Repeats with different samples (seeds)", 1, 5, 1, key="sd_seeds")
    with right:
        strategies = st.multiselect(
            "Strategies", list(STRATEGIES), default=["linear_probe", "small_cnn", "pixels"], key="sd_strategies",
            format_func=lambda name: name.replace("_", " "),
        )
        steps = st.slider("Training steps (fine-tune and networks from scratch)", 10, 200, 100, step=10, key="sd_steps")
        st.caption(" · ".join(f"**{name.replace('_', ' ')}**: {text}" for name, text in STRATEGIES.items()))
        st.caption("**fine tune** and **scratch** train the whole EfficientNet: expect minutes per run on a laptop "
                   "CPU. For the full comparison run `explainer transfer --out FILE` once and open the file here.")
    start = st.form_submit_button("Run the comparison", type="primary", icon=":material/play_arrow:")

if start:
    with shows_errors():
        progress = st.progress(0.0, text="Computing frozen ImageNet features (cached after the first run)…")

        def on_run(done: int, total: int, row: dict) -> None:
            """Show progress after a finished run."""
            progress.progress(done / total, text=(
                f"{done}/{total}: {row['strategy'].replace('_', ' ')} with {row['shots']} per class → "
                f"{row['accuracy']:.1%} in {row['seconds']:.1f} s"))

        st.session_state[RESULTS_KEY] = explainer.compare_transfer(
            dataset, shots=sorted(shots), seeds=seeds, strategies=strategies, steps=steps, callback=on_run,
        )
        progress.empty()

results: TransferResults | None = st.session_state.get(RESULTS_KEY)
if results is None:
    st.info("Choose a setting and press **Run the comparison**. The default takes well under a minute on a laptop "
            "CPU; the first run also computes the frozen ImageNet features, which are then cached.")
    st.stop()

curve = transfer_curve(results)
st.plotly_chart(curve, width="stretch", key="sd_curve")
threshold = st.slider("Accuracy to reach", 0.5, 1.0, 0.8, step=0.05, key="sd_threshold")
st.markdown(results.verdict(threshold))
needed = results.examples_needed(threshold)
cols = st.columns(len(needed))
for column, (strategy, count) in zip(cols, needed.items()):
    column.metric(f"{strategy.replace('_', ' ')}: examples per class for {threshold:.0%}",
                  "more than measured" if count is None else str(count))
summary = results.summary()
st.dataframe(summary, hide_index=True, column_config={
    "mean": st.column_config.NumberColumn("mean accuracy", format="percent"),
    "std": st.column_config.NumberColumn("std across seeds", format="percent"),
})
feature_note = (f"; frozen features {results.feature_seconds:.1f} s ({results.feature_source})"
                if results.feature_seconds is not None else "")
st.caption(f"{len(results.table)} runs on {results.device} in {results.seconds:.1f} s{feature_note}; "
           f"chance level {results.chance:.1%}. {results.method}.")

offer_report("small_data", ReportSection(
    f"Transfer vs scratch on {results.dataset}",
    text=results.verdict(threshold),
    figures=[curve],
    numbers={**results.config, "device": results.device, "seconds": results.seconds, "chance": results.chance},
    tables={"accuracy per strategy and shots": summary.to_dict("records"),
            "every run": results.table.to_dict("records")},
))
