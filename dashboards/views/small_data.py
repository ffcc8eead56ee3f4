"""Small data is enough (sometimes): transfer learning against training from scratch, 1–50 examples per class.

On first load the page shows the finished comparison shipped in ``results/`` (textures, where
ImageNet features help, beside digits, where they do not), with bands across seeds and the
library's verdict, which compares strategies paired by seed and names a winner only where the
interval says so. Live runs for other settings show their time estimate before they start.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
from common import offer_report, shipped, shows_errors

import explainer
from explainer import STRATEGIES, ReportSection, TransferResults
from explainer.plots.transfer import transfer_curve
from explainer.transfer import DEFAULT_SHOTS

#: This learner's latest live or opened comparison (session only).
RESULTS_KEY = "transfer_results"
#: Where the shipped results files live (``EXPLAINER_SHIPPED_RESULTS`` overrides it, for tests).
RESULTS_DIR = Path(os.environ.get("EXPLAINER_SHIPPED_RESULTS", shipped("results")))
SHIPPED = {"textures": "the positive case: natural texture photos, where ImageNet features should help",
           "digits": "the counter-example: 8×8 digits, nothing like ImageNet photos"}
DATASETS = {
    "textures": "six texture photos, 64×64 crops – natural images, where ImageNet features should help",
    "digits": "8×8 handwritten digits – the counter-example: tiny images unlike ImageNet photos",
    "known_answer": "synthetic squares in quadrants – the class is *where*, not *what*",
}


def shipped_file(name: str) -> Path | None:
    """The shipped results file for dataset ``name`` (``results/*<name>*.jsonl``), or None."""
    found = sorted(RESULTS_DIR.glob(f"*{name}*.jsonl")) + sorted(RESULTS_DIR.glob(f"*{name}*.json"))
    return found[0] if found else None


@st.cache_data(show_spinner=False)
def shipped_results(path: str, modified: float) -> TransferResults:
    """A shipped results file read once per server (it only reads; keyed by path and modification time)."""
    return explainer.open_results(path)


def show_study(results: TransferResults, key: str, threshold: float, note: str = "") -> list:
    """The curve with bands across seeds, the library's verdict, and the headline difference with its interval."""
    curve = transfer_curve(results)
    st.plotly_chart(curve, width="stretch", key=f"sd_curve_{key}")
    if note:
        st.caption(note)
    st.markdown(results.verdict(threshold))
    rows = results.headline()
    if len(rows):
        st.dataframe(rows[["shots", "a", "b", "difference", "ci_low", "ci_high", "n", "distinguishable"]],
                     hide_index=True, key=f"sd_headline_{key}", column_config={
                         "a": "pretrained", "b": "from scratch",
                         "difference": st.column_config.NumberColumn("difference (points)", format="%+.1f"),
                         "ci_low": st.column_config.NumberColumn("95 % CI low", format="%+.1f"),
                         "ci_high": st.column_config.NumberColumn("95 % CI high", format="%+.1f"),
                         "n": "seeds"})
    return [curve]


def estimate_words(reference: TransferResults | None, strategies: list[str], shots: list[int], seeds: int) -> str:
    """The library's estimate of a live run from the shipped study's measured runs, in words (or nothing)."""
    estimate = reference.estimate(strategies, shots, seeds) if reference is not None else None
    return f"Estimate before you start: {estimate.words('shipped')}" if estimate is not None else ""


def seed_counts(results: TransferResults) -> str:
    """"3" when every point has 3 seeds, "3–10" when some points have more."""
    counts = results.table.groupby(["strategy", "shots"])["seed"].nunique()
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}–{high}"


def open_file(upload, typed: str) -> TransferResults:
    """A results file the learner uploaded or named, read (never run) by the library."""
    if upload is not None:
        return explainer.open_results(upload.getvalue(), name=upload.name)
    if typed.strip():
        path = Path(typed.strip()).expanduser()
        if path.suffix.lower() not in (".json", ".jsonl") or not path.is_file():
            raise explainer.InputError(f"{path} is not a .jsonl or .json results file on this machine.")
        return explainer.open_results(path)
    raise explainer.InputError("Upload a results file or type its path first.")


st.title("Small data is enough (sometimes)")
st.markdown(
    "“You need huge datasets.” Not if someone else already did the heavy lifting: a network "
    "pretrained on ImageNet has learned edges, textures and shapes, and a short **fine-tune** – or "
    "a **linear probe** on its features – can learn a new task from a handful of labelled examples. "
    "The same experiment shows where that fails. Every strategy trains on the *same* few-shot sample "
    "(per seed), its settings chosen on a validation split of that sample, and is scored on the full test "
    "split; differences are paired by seed and test image, and a winner is named only with ≥ 5 seeds and a "
    "Holm-adjusted p < 0.05 (`explainer.stats`) – below that the verdict says how many seeds agree."
)
threshold = st.slider("Accuracy to reach", 0.5, 1.0, 0.8, step=0.05, key="sd_threshold")

st.header("The finished comparison")
figures: list = []
studies: dict[str, TransferResults] = {}
for column, (name, role) in zip(st.columns(2, gap="large"), SHIPPED.items()):
    with column:
        st.subheader(f"{name}: {role.split(':')[0]}")
        path = shipped_file(name)
        if path is None:
            st.info(f"No shipped results file for {name} in {RESULTS_DIR} – make one with "
                    f"`explainer transfer --dataset {name} --out results/transfer_{name}.jsonl`.")
            continue
        with shows_errors(stop=False):
            studies[name] = shipped_results(str(path), path.stat().st_mtime)
            figures += show_study(studies[name], name, threshold, note=f"{role[0].upper()}{role[1:]}. File: "
                                  f"`{path.relative_to(RESULTS_DIR.parent) if RESULTS_DIR.parent in path.parents else path}`"
                                  f", {len(studies[name].table)} runs, {seed_counts(studies[name])} seeds per point, made by "
                                  f"`explainer transfer --dataset {name} --out FILE`.")

st.header("Run it yourself")
live_tab, file_tab = st.tabs(["Other settings, live", "Open a finished results file"])
with live_tab:
    left, right = st.columns(2, gap="large")
    with left:
        dataset = st.selectbox("Dataset", list(DATASETS), format_func=lambda n: f"{n} – {DATASETS[n]}",
                               key="sd_dataset")
        shots = st.multiselect("Labelled examples per class", list(DEFAULT_SHOTS), default=[1, 5], key="sd_shots")
        seeds = st.slider("Repeats with different samples (seeds)", 1, 10, 3, key="sd_seeds",
                          help="One seed gives no interval; fewer than 5 name no winner, and the verdict says so.")
    with right:
        strategies = st.multiselect("Strategies", list(STRATEGIES), default=["linear_probe", "small_cnn", "pixels"],
                                    key="sd_strategies", format_func=lambda name: name.replace("_", " "))
        steps = st.slider("Training steps (fine-tune and networks from scratch)", 10, 200, 100, step=10,
                          key="sd_steps")
        st.caption(" · ".join(f"**{name.replace('_', ' ')}**: {text}" for name, text in STRATEGIES.items()))
    estimate = estimate_words(studies.get(dataset) or next(iter(studies.values()), None), strategies, shots, seeds)
    if estimate:
        st.info(estimate, icon=":material/timer:")
    if st.button("Run the comparison", type="primary", icon=":material/play_arrow:", key="sd_run"):
        with shows_errors():
            progress = st.progress(0.0, text="Computing frozen ImageNet features (cached after the first run)…")

            def on_run(done: int, total: int, row: dict) -> None:
                """Show progress after a finished run."""
                progress.progress(done / total, text=(
                    f"{done}/{total}: {row['strategy'].replace('_', ' ')} with {row['shots']} per class → "
                    f"{row['accuracy']:.1%} in {row['seconds']:.1f} s"))

            st.session_state[RESULTS_KEY] = explainer.compare_transfer(
                dataset, shots=sorted(shots), seeds=seeds, strategies=strategies, steps=steps, progress=on_run)
            progress.empty()
with file_tab:
    st.markdown("Results written by `explainer transfer --out FILE` or `compare_transfer(..., out=FILE)` "
                "(`.jsonl` or `.json`), uploaded or as a path on this machine. They are only read, never rerun.")
    upload = st.file_uploader("Results file", type=["jsonl", "json"], key="sd_upload")
    typed = st.text_input("…or its path", key="sd_path", placeholder="results/transfer_textures.jsonl")
    if st.button("Open", key="sd_open", icon=":material/folder_open:"):
        with shows_errors():
            st.session_state[RESULTS_KEY] = open_file(upload, typed)

results: TransferResults | None = st.session_state.get(RESULTS_KEY)
if results is not None:
    st.subheader(f"Your comparison: {results.dataset}")
    figures += show_study(results, "yours", threshold)
    summary = results.summary()
    st.dataframe(summary, hide_index=True, key="sd_summary", column_config={
        "mean": st.column_config.NumberColumn("mean accuracy", format="percent"),
        "ci_low": st.column_config.NumberColumn("95 % CI low", format="percent"),
        "ci_high": st.column_config.NumberColumn("95 % CI high", format="percent"),
        "std": st.column_config.NumberColumn("std across seeds", format="percent"),
    })
    st.caption(f"{len(results.table)} runs on {results.device} in {results.seconds:.1f} s; chance level "
               f"{results.chance:.1%}. {results.protocol}.")

shown = results or studies.get("textures")
if shown is not None:
    offer_report("small_data", ReportSection(
        f"Transfer vs scratch on {shown.dataset}", text=shown.verdict(threshold), figures=figures,
        numbers={**shown.config, "device": shown.device, "seconds": shown.seconds, "chance": shown.chance},
        tables={"accuracy per strategy and shots": [{str(k): v for k, v in r.items()} for r in shown.summary().to_dict("records")],
                "every run": [{str(k): v for k, v in r.items()} for r in shown.table.to_dict("records")]},
    ))
