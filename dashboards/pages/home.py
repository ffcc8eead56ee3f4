"""Home: what a neural network is, and the three myths."""

import streamlit as st

st.title("Open up a neural network")
st.markdown(
    "Three myths, busted on your own machine: networks are **black boxes**, you need a "
    "**supercomputer** to train one, and you always need **huge datasets**."
)
