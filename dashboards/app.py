"""Streamlit entry point: one page per myth plus the playground, your own model and a report.

Pages live in `views/` (not `pages/`: a `pages/` folder makes Streamlit start in its legacy
multi-page mode until `st.navigation` has run once, so a first visit to a page URL would skip it).

The sidebar holds the one model picker every page uses (see ``common.model_picker``).

Run it with ``explainer dashboard`` or ``streamlit run dashboards/app.py``.
"""

from __future__ import annotations

import streamlit as st
from model_choice import model_picker, start_warm_up

st.set_page_config(page_title="explainer – open up neural networks", page_icon=":material/neurology:", layout="wide")

pages = {
    "Start": [
        st.Page("views/home.py", title="What is a neural network", icon=":material/home:", default=True),
    ],
    "Three myths": [
        st.Page("views/black_box.py", title="Not a black box", icon=":material/visibility:"),
        st.Page("views/train.py", title="Train on your laptop", icon=":material/laptop:"),
        st.Page("views/small_data.py", title="Small data is enough (sometimes)", icon=":material/dataset:"),
        st.Page("views/planted.py", title="Which explanations find the truth?", icon=":material/fact_check:"),
        st.Page("views/mechanisms.py", title="Where does the answer live?", icon=":material/hub:"),
    ],
    "Try it": [
        st.Page("views/playground.py", title="Playground", icon=":material/tune:"),
        st.Page("views/your_model.py", title="Your model", icon=":material/upload_file:"),
    ],
    "Take it home": [
        st.Page("views/report.py", title="Report", icon=":material/description:"),
    ],
}
navigation = st.navigation(pages)
picked = model_picker()  # one model picker for the whole app, above the page list
st.sidebar.caption(picked.note)
navigation.run()
start_warm_up()  # after the first page is sent: the bundled model loads in the background
