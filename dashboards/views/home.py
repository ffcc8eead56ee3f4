"""Home: what a neural network is (the bundled model's anatomy) and the three myths.

The anatomy comes from the shipped file ``results/home_anatomy.json`` (the library's own output,
rewritten by ``dashboards/home_anatomy.py`` and checked against the library by the tests), so this
page paints without importing torch; the bundled model meanwhile loads in the background.
"""

from __future__ import annotations

from importlib import metadata

import home_anatomy
import streamlit as st

#: The same table in a notebook (run by tests/test_dashboard_snippets.py, like every snippet a page shows).
NOTEBOOK_SNIPPET = """import explainer

model = explainer.load_model()          # the bundled EfficientNet-Lite0, offline
facts = explainer.model_anatomy(model)
print(facts.total_params, facts.depth)
facts.table                             # one row per layer: shapes, parameters, share"""


@st.cache_resource(show_spinner=False)
def shipped_anatomy(version: str) -> dict:
    """The shipped anatomy of the bundled model (read once per server and package version)."""
    return home_anatomy.read()


st.title("Open up a neural network")
st.markdown(
    "A neural network is a chain of simple layers. Each layer multiplies what it receives by "
    "learned numbers (**parameters**), adds them up, and passes the result through a simple "
    "nonlinearity. An image goes in as numbers, passes through the **hidden layers**, and comes "
    "out as one score per class. Below is the real network this dashboard explains: "
    "EfficientNet-Lite0, trained on the 1,000 ImageNet classes, bundled so it works offline."
)

version = metadata.version("explainer")
facts = shipped_anatomy(version)
table = facts["table"]
input_row = table[0]
output_row = [row for row in table if row["role"] == "output"][-1]
hidden = [row for row in table if row["role"] == "hidden"]
cols = st.columns(4)
cols[0].metric("Input", input_row["output_shape"], help="channels × height × width of one image")
cols[1].metric("Hidden layers shown", len(hidden), help=f"top-level blocks (depth {facts['depth']})")
cols[2].metric("Output", output_row["output_shape"], help="one score per ImageNet class")
cols[3].metric("Parameters", f"{facts['total_params'] / 1e6:.2f} M", help=f"{facts['total_params']:,} learned numbers")
st.plotly_chart(facts["figure"], width="stretch", key="home_anatomy")
with st.expander("Every layer as a table"):
    st.dataframe(
        table,
        column_config={
            "param_share": st.column_config.ProgressColumn("share of parameters", format="percent",
                                                           min_value=0.0, max_value=1.0),
            "params": st.column_config.NumberColumn("parameters", format="localized"),
            "output_values": st.column_config.NumberColumn("values out", format="localized"),
        },
        hide_index=True,
    )
st.caption(f"Measured with one forward pass in {facts['seconds'] * 1000:.0f} ms on {facts['device']} "
           f"(`{facts['command']}`, explainer {facts['explainer']}, torch {facts['torch']}). The same table "
           "in a notebook:")
st.code(NOTEBOOK_SNIPPET, language="python")

st.header("Three myths, busted on your own machine")
myths = [
    ("“It's a black box.”",
     "You can ask which pixels drove a prediction – and check the answer: deleting the pixels a map "
     "points to must hurt the score more than deleting random ones.",
     "views/black_box.py", "Not a black box"),
    ("“You need a supercomputer.”",
     "A real convolutional network learns to read handwritten digits in seconds on this CPU; every "
     "run shows its seconds and floating-point operations.",
     "views/train.py", "Train on your laptop"),
    ("“You need huge datasets.”",
     "Start from a network that has already seen ImageNet and a handful of examples per class is "
     "enough – and see where that fails.",
     "views/small_data.py", "Small data is enough (sometimes)"),
]
for column, (myth, answer, page, label) in zip(st.columns(3), myths):
    with column.container(border=True):
        st.subheader(myth)
        st.markdown(answer)
        st.page_link(page, label=label, icon=":material/arrow_forward:")
st.markdown(
    f"Also try the **Playground** (train tiny networks on 2-D points and watch every neuron) and "
    f"**Your model** (explain your own checkpoint). explainer {version}."
)
