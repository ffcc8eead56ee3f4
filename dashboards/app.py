"""Streamlit entry point: one page per myth plus the playground."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="explainer – open up neural networks", page_icon="🔍", layout="wide")

pages = [
    st.Page("pages/home.py", title="What is a neural network", icon="🏠", default=True),
]
st.navigation(pages).run()
