"""Streamlit entry point: one page per myth plus the playground, your own model and a report.

Run it with ``explainer dashboard`` or ``streamlit run dashboards/app.py``.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="explainer – open up neural networks", page_icon="🔍", layout="wide")

pages = {
    "Start": [
        st.Page("pages/home.py", title="What is a neural network", icon="🏠", default=True),
    ],
    "Three myths": [
        st.Page("pages/your_model.py", title="Your model", icon="📦"),
    ],
    "Take it home": [
        st.Page("pages/report.py", title="Report", icon="📄"),
    ],
}
st.navigation(pages).run()
