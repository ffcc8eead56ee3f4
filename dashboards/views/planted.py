"""Which explanations find the truth? Every kind of explanation scored against a planted shortcut and mislabels.

On first load the page shows the shipped report card (``results/planted.jsonl``, written by
``explainer planted --seeds 5 --timeline --out results/planted.jsonl``) and its timeline. A live run
(quick settings, a few seeds) shows its time estimate first and its progress while it runs; its report is
kept in this session only.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import streamlit as st
from common import shipped, shows_errors

from explainer import list_methods, planted_benchmark
from explainer.evidence.planted import open_planted
from explainer.evidence.planted_estimate import estimate_planted
from explainer.evidence.planted_settings import CONTROLS, QUICK_METHODS, PlantedSettings
from explainer.plots.planted import planted_report_figure, planted_timeline_figure

#: This learner's latest live report (session only).
LIVE_KEY = "planted_live_report"
#: The shipped results file (``EXPLAINER_SHIPPED_RESULTS`` overrides the folder, for tests).
SHIPPED = Path(os.environ.get("EXPLAINER_SHIPPED_RESULTS", shipped("results"))) / "planted.jsonl"
COMMAND = "explainer planted --seeds 5 --timeline --out results/planted.jsonl"


@st.cache_data(show_spinner=False)
def shipped_report(path: str, modified: float) -> dict:
    """The shipped report card, read once per server (keyed by path and modification time)."""
    report = open_planted(path)
    return {"payload": report.to_dict(), "timeline": report.timeline}


def show(payload: dict, timeline, key: str) -> None:
    """The report card, its words, the timeline and the table."""
    st.markdown(payload["verdict"])
    st.plotly_chart(planted_report_figure(payload["rows"]), width="stretch", key=f"{key}_card")
    if len(timeline):
        st.plotly_chart(planted_timeline_figure(timeline), width="stretch", key=f"{key}_timeline")
    columns = ["kind", "method", "score", "ci_low", "ci_high", "n", "baseline", "beats_baseline"]
    st.dataframe([{c: row.get(c) for c in columns} for row in payload["rows"]], hide_index=True)
    if payload.get("skipped"):
        st.caption("Methods that do not apply to this network: " + ", ".join(payload["skipped"]))
    if payload.get("not_run"):
        st.caption("Not in this report: " + "; ".join(f"{k} ({v})" for k, v in payload["not_run"].items()))


st.title("Which explanations find the truth?")
st.markdown(
    "Two small CNNs per seed train on synthetic images whose class is set by a **stripe patch** (the causal "
    "object). In one, a **corner colour patch** always shows the class (a shortcut); in the other it is random. "
    "How much each network *uses* the shortcut is measured, not assumed: the accuracy it loses when the corner "
    "shows the wrong colour. Each explanation is then scored on whether it reports that difference – and "
    "training-data attribution on whether it finds the **mislabeled** training images."
)

shipped_tab, live_tab = st.tabs(["Shipped report card", "Run it yourself"])
with shipped_tab:
    if SHIPPED.exists():
        with shows_errors(stop=False):
            found = shipped_report(str(SHIPPED), SHIPPED.stat().st_mtime)
            st.caption(f"From `{SHIPPED.name}`, made with `{COMMAND}` "
                       f"({len(found['payload']['seeds'])} seeds; {found['payload']['seconds']:.0f} s of compute).")
            show(found["payload"], found["timeline"], "shipped")
    else:
        st.info(f"No shipped results yet: make them with `{COMMAND}`.")

with live_tab:
    seeds = st.slider("Seeds", min_value=2, max_value=5, value=2, help="5 or more to name winners")
    n_train = st.slider("Training images", min_value=200, max_value=1000, value=400, step=100)
    epochs = st.slider("Epochs", min_value=2, max_value=10, value=6)
    methods = st.multiselect("Attribution methods (the controls are always added)", list_methods(),
                             default=list(QUICK_METHODS))
    timeline = st.checkbox("Also the timeline (reliance and maps after every epoch)", value=False)
    if st.button("Run a small benchmark", type="primary"):
        settings = replace(PlantedSettings.quick(tuple(methods) + CONTROLS), n_train=n_train, epochs=epochs,
                           timeline_epochs=epochs)
        with shows_errors():
            estimate = estimate_planted(settings, list(range(seeds)), timeline=timeline)
            st.info(f"Estimated {estimate.seconds:.0f} s on this machine.", icon=":material/timer:")
            bar = st.progress(0.0, text="Training the first networks…")

            def on_progress(done: int, total: int, left: float | None) -> None:
                """Show progress after each finished unit."""
                bar.progress(done / total, text=f"{done} of {total} units" + (f", ~{left:.0f} s left" if left else ""))

            report = planted_benchmark(seeds=seeds, settings=settings, timeline=timeline, progress=on_progress)
            bar.empty()
            st.session_state[LIVE_KEY] = {"payload": report.to_dict(), "timeline": report.timeline}
    if LIVE_KEY in st.session_state:
        show(st.session_state[LIVE_KEY]["payload"], st.session_state[LIVE_KEY]["timeline"], "live")
