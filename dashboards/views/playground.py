"""Playground: TensorFlow Playground in PyTorch – tiny networks on 2-D points, every neuron visible, drawn live."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st
from common import offer_report, shows_errors, url_choice, url_option, url_value, write_url
from sections.experiment import render_experiment_section

from explainer import PlaygroundConfig, PlaygroundFrame, PlaygroundRun, ReportSection, train_playground
from explainer.data.datasets import TOY_SETS
from explainer.learn.architectures import ACTIVATIONS
from explainer.learn.playground import FEATURES, MAX_LAYERS, MAX_NEURONS
from explainer.plots.playground import (
    decision_boundary,
    frame_boundary,
    frame_losses,
    loss_curves,
    network_diagram,
    neuron_heatmaps,
)

#: This learner's runs, newest last (session only: another learner never sees them).
RUNS_KEY = "playground_runs"
HISTORY = 8
LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
RATES = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
DEFAULT_WIDTHS = [4, 2, 2, 2, 2, 2]


def settings_panel() -> tuple[dict, bool]:
    """The Playground's controls (defaults from the URL); returns the settings and whether Train was pressed."""
    data_col, net_col, train_col = st.columns(3, gap="large")
    with data_col:
        st.subheader("Data")
        sets = list(TOY_SETS)
        dataset = st.segmented_control("Dataset", sets, default=sets[url_choice("dataset", sets, "circle")],
                                       key="pg_dataset") or "circle"
        noise = st.slider("Noise", 0.0, 0.5, url_value("noise", 0.0), step=0.05, key="pg_noise")
        train_pct = st.slider("Training share of the points", 10, 90, url_value("train", 50), step=10, format="%d%%",
                              key="pg_train")
        chosen = [f for f in url_value("features", ("x1", "x2")) if f in FEATURES]
        features = st.multiselect("Features", list(FEATURES), default=chosen, key="pg_features")
    with net_col:
        st.subheader("Network")
        widths_in_url = [int(w) for w in url_value("hidden", ("4", "2")) if w.isdigit()]
        layers = st.slider("Hidden layers", 0, MAX_LAYERS, min(len(widths_in_url), MAX_LAYERS), key="pg_layers")
        widths = tuple(
            st.slider(f"Neurons in layer {i + 1}", 1, MAX_NEURONS,
                      min(MAX_NEURONS, max(1, (widths_in_url + DEFAULT_WIDTHS[len(widths_in_url):])[i])),
                      key=f"pg_neurons_{i}")
            for i in range(layers)
        )
        activations = list(ACTIVATIONS)
        activation = st.selectbox("Activation", activations, index=url_choice("activation", activations, "tanh"),
                                  key="pg_activation")
    with train_col:
        st.subheader("Training")
        lr = st.select_slider("Learning rate", LEARNING_RATES, value=url_option("lr", LEARNING_RATES, 0.03), key="pg_lr")
        kinds = ["none", "L1", "L2"]
        regularization = st.selectbox("Regularization", kinds, index=url_choice("reg", kinds, "none"), key="pg_reg")
        rate = st.select_slider("Regularization rate", RATES, value=url_option("rate", RATES, 0.0), key="pg_rate",
                                disabled=regularization == "none")
        batch_size = st.slider("Batch size", 1, 30, url_value("batch", 10), key="pg_batch")
        epochs = st.slider("Epochs", 10, 500, url_value("epochs", 100), step=10, key="pg_epochs")
        start = st.button("Train", type="primary", key="pg_train_button", icon=":material/play_arrow:")
    settings = {"dataset": dataset, "noise": noise, "train": train_pct, "features": features, "hidden": widths,
                "activation": activation, "lr": lr, "reg": regularization, "rate": rate, "batch": batch_size,
                "epochs": epochs}
    write_url({**settings, "hidden": widths or ("none",)})
    return settings, start


def config_of(settings: dict) -> PlaygroundConfig:
    """The library's configuration for these settings (it validates them)."""
    rate, regularization = settings["rate"], settings["reg"]
    return PlaygroundConfig(
        dataset=settings["dataset"], noise=settings["noise"], train_fraction=settings["train"] / 100,
        features=tuple(settings["features"]), hidden=settings["hidden"], activation=settings["activation"],
        lr=settings["lr"], batch_size=settings["batch"], epochs=settings["epochs"],
        l1=rate if regularization == "L1" else 0.0, l2=rate if regularization == "L2" else 0.0,
    )


def train_live(config: PlaygroundConfig, boundary_slot, loss_slot) -> PlaygroundRun:
    """Train, redrawing the boundary and the loss curve at every snapshot (the untrained network first)."""
    progress = st.progress(0.0, text="Training…")

    def on_epoch(stats) -> None:
        """Show progress after an epoch."""
        progress.progress(stats.epoch / config.epochs, text=(
            f"epoch {stats.epoch}/{config.epochs} · test loss {stats.test_loss:.3f} · {stats.elapsed:.2f} s"))

    def on_frame(frame: PlaygroundFrame) -> None:
        """Redraw the boundary and the loss so far."""
        boundary_slot.plotly_chart(frame_boundary(frame), width="stretch", key=f"pg_live_boundary_{frame.epoch}")
        if frame.train_loss:
            loss_slot.plotly_chart(frame_losses(frame), width="stretch", key=f"pg_live_losses_{frame.epoch}")

    run = train_playground(config, callback=on_epoch, on_frame=on_frame)
    progress.empty()
    runs: list[PlaygroundRun] = st.session_state.setdefault(RUNS_KEY, [])
    runs.append(run)
    del runs[:-HISTORY]
    return run


def show_run(run: PlaygroundRun, runs: list[PlaygroundRun], boundary_slot, loss_slot) -> list:
    """Metrics, the boundary with its replay, the loss, the network, every neuron and the table of runs."""
    summary = run.summary().iloc[0]
    if run.training.diverged:
        st.error(run.training.message)
    snapshot_epochs = sorted(run.snapshots)
    epoch = st.select_slider("Replay the boundary as it formed (epoch)", snapshot_epochs, value=snapshot_epochs[-1],
                             key="pg_replay") if len(snapshot_epochs) > 1 else None
    boundary = decision_boundary(run, epoch=epoch if epoch != snapshot_epochs[-1] else None)
    boundary_slot.plotly_chart(boundary, width="stretch", key="pg_boundary")
    losses = loss_curves(run)
    loss_slot.plotly_chart(losses, width="stretch", key="pg_losses")
    cols = st.columns(4)
    cols[0].metric("Test loss", f"{summary['test_loss']:.3f}")
    cols[1].metric("Test accuracy", f"{summary['test_accuracy']:.1%}")
    cols[2].metric("Training time", f"{summary['seconds']:.2f} s", help=f"{summary['epochs']} epochs on {summary['device_name']}")
    cols[3].metric("Parameters", f"{summary['parameters']:,}")
    diagram, neurons = network_diagram(run), neuron_heatmaps(run)
    st.plotly_chart(diagram, width="stretch", key="pg_network")
    st.plotly_chart(neurons, width="stretch", key="pg_neurons")
    st.subheader("Every run, timed")
    st.dataframe(
        [{"run": i + 1, "dataset": r.config.dataset, "features": ", ".join(r.config.features),
          "hidden": "-".join(map(str, r.config.hidden)) or "none", "activation": r.config.activation,
          "lr": r.config.lr, "epochs": r.training.epochs, "test loss": r.summary().iloc[0]["test_loss"],
          "test accuracy": r.test_accuracy, "seconds": r.seconds, "parameters": r.training.parameters}
         for i, r in enumerate(runs)],
        hide_index=True,
    )
    return [boundary, losses, diagram, neurons]


st.title("Playground")
st.markdown(
    "The [TensorFlow Playground](https://playground.tensorflow.org) in PyTorch, on this CPU. Pick a "
    "dataset of blue and orange points, the features the network sees, its layers and neurons, and "
    "train it. The background shows what the network answers everywhere in the plane – it starts "
    "from the untrained network and is redrawn while it learns; every neuron's own picture is drawn "
    "too, and the links between them are the weights. The settings live in the page's address: copy "
    "it to share this exact experiment."
)
settings, start = settings_panel()
left, right = st.columns([3, 2], gap="large")
boundary_slot, loss_slot = left.empty(), right.empty()
runs: list[PlaygroundRun] = st.session_state.get(RUNS_KEY, [])
with shows_errors():
    config = config_of(settings)
    if start or not runs:  # first visit: train the settings in the URL (or the defaults) right away, live
        train_live(config, boundary_slot, loss_slot)
runs = st.session_state[RUNS_KEY]
run = runs[-1]
figures = show_run(run, runs, boundary_slot, loss_slot)
if run.config != config:
    st.caption("The settings above changed since this run: press **Train** to run them.")
render_experiment_section("playground", key="pg_experiment", task=run.config)
offer_report("playground", ReportSection(
    f"Playground: {run.config.dataset}, {'-'.join(map(str, run.config.hidden)) or 'no'} hidden neurons",
    text=run.training.receipt(), figures=figures,
    numbers={**{str(k): v for k, v in run.summary().iloc[0].items()}, **asdict(run.config)},
))
