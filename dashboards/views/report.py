"""Report: everything this learner explained, as one self-contained HTML file."""

from __future__ import annotations

import streamlit as st
from common import BUNDLED_KEY, bundled_classifier, model_lock, report_sections, slug

import explainer
from explainer import Anatomy, ReportSection, build_report
from explainer.plots.inside import anatomy_figure
from explainer.report import environment


@st.cache_data(show_spinner=False)
def example_anatomy(key: str = BUNDLED_KEY) -> Anatomy:
    """The bundled model's anatomy (the example section before the learner has produced any)."""
    with model_lock():
        return explainer.model_anatomy(bundled_classifier(key))

st.title("Report")
st.markdown(
    "Every explanation view you open in this session is collected here. Download them as **one "
    "HTML file** that opens offline: interactive figures (plotly's JavaScript is inside the file), "
    "the numbers behind them, and the library versions and hardware that produced them."
)

sections = report_sections()
if not sections:
    st.info("Nothing collected yet: explain a photo on **Not a black box** (or train a model) and come back. "
            "Meanwhile, here is what one section of a report looks like.")
    facts = example_anatomy()
    example = ReportSection("Example: the bundled network, layer by layer", figures=[anatomy_figure(facts)],
                            numbers={"parameters": facts.total_params, "depth": facts.depth, "device": facts.device})
    with st.expander(example.title, expanded=True):
        st.plotly_chart(example.figures[0], width="stretch", key="report_example")
        st.download_button("Download the example as HTML", data=lambda: build_report([example], title=example.title),
                           file_name=f"{slug(example.title)}.html", mime="text/html", on_click="ignore",
                           key="report_example_download", icon=":material/download:")
else:
    keys = st.multiselect("Views to include", list(sections), default=list(sections),
                          format_func=lambda key: sections[key].title, key="report_views")
    title = st.text_input("Report title", value="What my network does", key="report_title")
    chosen = [sections[key] for key in keys]
    if chosen:
        st.download_button(
            f"Download {len(chosen)} view(s) as HTML", data=lambda: build_report(chosen, title=title),
            file_name=f"{slug(title)}.html", mime="text/html", on_click="ignore", key="report_download",
            icon=":material/download:", type="primary",
        )
    for key in keys:
        section = sections[key]
        with st.expander(section.title, expanded=True):
            if section.text:
                st.markdown(section.text)
            if section.numbers:
                st.dataframe([{"name": k, "value": str(v)} for k, v in section.numbers.items()], hide_index=True)
            for caption, rows in section.tables.items():
                st.caption(caption)
                st.dataframe(rows, hide_index=True)
            for index, figure in enumerate(section.figures):
                st.plotly_chart(figure, width="stretch", key=f"report_{key}_{index}")

st.subheader("This machine")
env = environment()
left, right = st.columns(2)
left.dataframe([{"library": k, "version": v} for k, v in env["versions"].items()], hide_index=True)
right.dataframe([{"part": k, "value": v} for k, v in env["hardware"].items()], hide_index=True)
