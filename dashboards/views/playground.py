"""Playground: TensorFlow Playground in PyTorch – tiny networks on 2-D points, every neuron visible."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st
from common import offer_report, shows_errors

from explainer.data.datasets import TOY_SETS
from explainer.learn.architectures import ACTIVATIONS
from explainer.learn.playground import (
    FEATURES,
    MAX_LAYERS,
    MAX_NEURONS,
    PlaygroundConfig,
    PlaygroundRun,
    train_playground,
)
from explainer.plots.playground import decision_boundary, loss_curves, network_diagram, neuron_heatmaps
from explainer.report import ReportSection

#: This learner's runs, newest last (session only: another learner never sees them).
RUNS_KEY = "playground_runs"
HISTORY = 8

st.title("Playground")
st.markdown(
    "The [TensorFlow Playground](https://playground.tensorflow.org) in PyTorch, on this CPU. Pick a "
    "dataset of blue and orange points, the features the network sees, its layers and neurons, and "
    "train it. The background shows what the network answers everywhere in the plane; every "
    "neuron's own picture is drawn too, and the links between them are the weights."
)

data_col, net_col, train_col = st.columns(3, gap="large")
with data_col:
    st.subheader("Data")
    dataset = st.segmented_control("Dataset", TOY_SETS, default="circle", key="pg_dataset") or "circle"
    noise = st.slider("Noise", 0.0, 0.5, 0.0, step=0.05, key="pg_noise")
    train_pct = st.slider("Training share of the points", 10, 90, 50, step=10, format="%d%%", key="pg_train")
    features = st.multiselect("Features", list(FEATURES), default=["x1", "x2"], key="pg_features")
with net_col:
    st.subheader("Network")
    layers = st.slider("Hidden layers", 0, MAX_LAYERS, 2, key="pg_layers")
    widths = tuple(
        st.slider(f"Neurons in layer {i + 1}", 1, MAX_NEURONS, [4, 2, 2, 2, 2, 2][i], key=f"pg_neurons_{i}")
        for i in range(layers)
    )
    activation = st.selectbox("Activation", list(ACTIVATIONS), index=list(ACTIVATIONS).index("tanh"),
                              key="pg_activation")
with train_col:
    st.subheader("Training")
    lr = st.select_slider("Learning rate", [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
                          value=0.03, key="pg_lr")
    regularization = st.selectbox("Regularization", ["none", "L1", "L2"], key="pg_reg")
    rate = st.select_slider("Regularization rate", [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
                            value=0.0, key="pg_rate", disabled=regularization == "none")
    batch_size = st.slider("Batch size", 1, 30, 10, key="pg_batch")
    epochs = st.slider("Epochs", 10, 500, 100, step=10, key="pg_epochs")
    start = st.button("Train", type="primary", key="pg_train_button", icon=":material/play_arrow:")

if start:
    with shows_errors():
        config = PlaygroundConfig(
            dataset=dataset, noise=noise, train_fraction=train_pct / 100, features=tuple(features), hidden=widths,
            activation=activation, lr=lr, batch_size=batch_size, epochs=epochs,
            l1=rate if regularization == "L1" else 0.0, l2=rate if regularization == "L2" else 0.0,
        )
        progress = st.progress(0.0, text="Training…")

        def on_epoch(stats) -> None:
            """Show progress after an epoch."""
            progress.progress(stats.epoch / epochs, text=(
                f"epoch {stats.epoch}/{epochs} · test loss {stats.test_loss:.3f} · {stats.elapsed:.2f} s"))

        fresh = train_playground(config, callback=on_epoch)
        progress.empty()
        runs: list[PlaygroundRun] = st.session_state.setdefault(RUNS_KEY, [])
        runs.append(fresh)
        del runs[:-HISTORY]

runs = st.session_state.get(RUNS_KEY, [])
if not runs:
    st.info("Set things up and press **Train** – the default network trains in about a second.")
    st.stop()
run = runs[-1]
summary = run.summary()
if run.training.diverged:
    st.error(run.training.message)
cols = st.columns(4)
cols[0].metric("Test loss", f"{summary['test_loss']:.3f}")
cols[1].metric("Test accuracy", f"{summary['test_accuracy']:.1%}")
cols[2].metric("Training time", f"{summary['seconds']:.2f} s",
               help=f"{summary['epochs']} epochs on {summary['device']}")
cols[3].metric("Parameters", f"{summary['parameters']:,}")

left, right = st.columns([3, 2], gap="large")
snapshot_epochs = sorted(run.snapshots)
with left:
    epoch = st.select_slider("Replay the boundary as it formed (epoch)", snapshot_epochs, value=snapshot_epochs[-1],
                             key="pg_replay") if len(snapshot_epochs) > 1 else None
    boundary = decision_boundary(run, epoch=epoch if epoch != snapshot_epochs[-1] else None)
    st.plotly_chart(boundary, width="stretch", key="pg_boundary")
with right:
    losses = loss_curves(run)
    st.plotly_chart(losses, width="stretch", key="pg_losses")
diagram, neurons = network_diagram(run), neuron_heatmaps(run)
st.plotly_chart(diagram, width="stretch", key="pg_network")
st.plotly_chart(neurons, width="stretch", key="pg_neurons")

st.subheader("Every run, timed")
st.dataframe(
    [{"run": i + 1, "dataset": r.config.dataset, "features": ", ".join(r.config.features),
      "hidden": "-".join(map(str, r.config.hidden)) or "none", "activation": r.config.activation,
      "lr": r.config.lr, "epochs": r.training.epochs, "test loss": r.summary()["test_loss"],
      "test accuracy": r.test_accuracy, "seconds": r.seconds, "parameters": r.training.parameters}
     for i, r in enumerate(runs)],
    hide_index=True,
)
offer_report("playground", ReportSection(
    f"Playground: {run.config.dataset}, {'-'.join(map(str, run.config.hidden)) or 'no'} hidden neurons",
    text=run.training.receipt(),
    figures=[boundary, losses, diagram, neurons],
    numbers={**{k: v for k, v in summary.items() if k != "config"}, **asdict(run.config)},
))
