"""Train on your laptop: a real CNN learns live on this CPU, with a receipt of what it cost."""

from __future__ import annotations

import streamlit as st
from common import offer_report, shows_errors

import explainer
from explainer.learn.architectures import ACTIVATIONS
from explainer.learn.training import OPTIMIZERS
from explainer.plots.training import gradient_norms, learning_step_figure, training_curves, update_ratios
from explainer.report import ReportSection

#: This learner's run (model + telemetry) lives in the session, never in a shared cache.
RUN_KEY = "train_run"
#: Offline image sets first; the torchvision ones need their files (download once elsewhere).
DATASETS = {
    "digits": "8×8 handwritten digits (scikit-learn, 1,437 training images)",
    "known_answer": "32×32 synthetic: the class is the quadrant of a bright square",
    "textures": "64×64 crops of six texture photos (scikit-image)",
    "mnist": "28×28 handwritten digits (torchvision files needed)",
    "fashion_mnist": "28×28 clothing (torchvision files needed)",
    "cifar10": "32×32 photos (torchvision files needed)",
}
LIMITED = {"mnist", "fashion_mnist", "cifar10"}
STEP_BATCH = 8


@st.cache_data(max_entries=8, show_spinner="Loading the dataset…")
def dataset(name: str, limit: int | None) -> explainer.Dataset:
    """A dataset by name (the same read-only tensors for everyone)."""
    return explainer.load_dataset(name, **({"limit": limit} if limit else {}))


def parse_widths(text: str, label: str) -> tuple[int, ...]:
    """'16, 32' → (16, 32); anything else is a clear error on the page."""
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise explainer.InputError(
            f"{label} must be whole numbers separated by commas, e.g. 16, 32 – got {text!r}."
        ) from None


st.title("Train on your laptop")
st.markdown(
    "“You need a supercomputer to train a neural network.” Not this one: a convolutional network "
    "learns to read handwritten digits **here, on this CPU, while you watch**. Every run ends with a "
    "receipt – seconds, floating-point operations, and how much of this processor's measured peak "
    "the training used."
)

settings, live = st.columns([1, 2], gap="large")
with settings:
    name = st.selectbox("Dataset", list(DATASETS), format_func=lambda n: f"{n} – {DATASETS[n]}", key="tr_dataset")
    limit = st.number_input("Training images (torchvision sets)", 1000, 60000, 10000, step=1000, key="tr_limit") \
        if name in LIMITED else None
    arch = st.radio("Network", ["cnn", "mlp"], horizontal=True, key="tr_arch",
                    format_func={"cnn": "convolutional (CNN)", "mlp": "fully connected (MLP)"}.get)
    channels = st.text_input("Convolution channels", "16, 32", key="tr_channels", disabled=arch != "cnn")
    hidden = st.text_input("Hidden layer widths", "64", key="tr_hidden")
    activation = st.selectbox("Activation", list(ACTIVATIONS), key="tr_activation")
    epochs = st.slider("Epochs (at most)", 1, 50, 15, key="tr_epochs")
    target = st.slider("Stop at test accuracy", 0.5, 1.0, 0.97, step=0.01, key="tr_target",
                       help="Training stops as soon as the test accuracy reaches this (1.0 = never early).")
    optimizer = st.selectbox("Optimizer", list(OPTIMIZERS), key="tr_optimizer")
    lr = st.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0], value=1e-3,
                          key="tr_lr")
    batch_size = st.select_slider("Batch size", [8, 16, 32, 64, 128, 256], value=32, key="tr_batch")
    start = st.button("Train", type="primary", key="tr_train", icon=":material/play_arrow:")

with settings, shows_errors():
    data = dataset(name, limit)
    spec = {"hidden": parse_widths(hidden, "Hidden layer widths"), "activation": activation}
    if arch == "cnn":
        spec["channels"] = parse_widths(channels, "Convolution channels")
    st.caption(f"{data.name}: {len(data.y_train):,} training and {len(data.y_test):,} test images of "
               f"{' × '.join(map(str, data.input_shape))}, {data.num_classes} classes.")

with live:
    if start:
        with shows_errors():
            model = explainer.build_model(arch, data, seed=0, **spec)
            progress = st.progress(0.0, text="Starting…")
            board = st.empty()

            def on_epoch(stats: explainer.EpochStats) -> None:
                """Show progress after an epoch."""
                progress.progress(stats.epoch / epochs, text=(
                    f"epoch {stats.epoch}/{epochs} · {stats.elapsed:.1f} s · "
                    f"test accuracy {stats.test_accuracy:.1%}"))
                board.markdown(f"**Epoch {stats.epoch}**: train loss {stats.train_loss:.3f}, "
                               f"test accuracy {stats.test_accuracy:.1%}, {stats.samples_per_second:,.0f} images/s")

            run = explainer.fit(model, data, epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size,
                                target_accuracy=target if target < 1.0 else None, callback=on_epoch, device="cpu")
            progress.empty()
            board.empty()
            st.session_state[RUN_KEY] = {"run": run, "arch": arch, "spec": spec, "data": data.name, "name": name}
    held = st.session_state.get(RUN_KEY)
    if held is None:
        st.info("Pick a dataset and press **Train**. The default digits CNN takes about a second.")
        st.stop()
    run: explainer.TrainingRun = held["run"]
    if run.diverged:
        st.error(run.message)
    else:
        st.success(run.receipt())
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{run.test_accuracy:.1%}")
    cols[1].metric("Training time", f"{run.train_seconds:.2f} s",
                   help=f"{run.epochs} epochs, {run.samples_seen:,} images")
    cols[2].metric("GFLOP/s", f"{run.gflops_per_second:.1f}",
                   help=f"{run.flops.training / 1e6:.2f} MFLOP per training image ({run.flops.method})")
    cols[3].metric("Share of peak", f"{run.peak_fraction:.0%}",
                   help=f"measured matrix-multiply peak {run.peak_gflops:.0f} GFLOP/s on {run.device_name}")
    curves = training_curves(run)
    st.plotly_chart(curves, width="stretch", key="tr_curves")

st.header("Training dynamics")
st.markdown(
    "How big are the gradients in each layer, and how much does each step change the weights? "
    "Vanishing gradients show as layers stuck near zero; a healthy update/weight ratio sits near 10⁻³."
)
dyn_left, dyn_right = st.columns(2)
norms, ratios = gradient_norms(run), update_ratios(run)
dyn_left.plotly_chart(norms, width="stretch", key="tr_norms")
dyn_right.plotly_chart(ratios, width="stretch", key="tr_ratios")

st.header("One learning step, end to end")
st.markdown(
    f"Everything above is this, repeated: take a batch of {STEP_BATCH} images, compute the loss, the "
    "gradient of the loss with respect to every weight, and move each weight a little against its "
    "gradient. Here is one such step on a freshly initialised copy of your network."
)
with shows_errors():
    fresh = explainer.build_model(held["arch"], data, seed=0, **held["spec"]) if held["name"] == name else None
if fresh is None:
    st.info("Train on the selected dataset to see its learning step.")
else:
    parameters = [n for n, p in fresh.named_parameters() if p.ndim > 1]
    parameter = st.selectbox("Parameter", parameters, key="tr_parameter")
    step = explainer.learning_step(fresh, (data.x_train[:STEP_BATCH], data.y_train[:STEP_BATCH]), lr=run.config["lr"])
    step_figure = learning_step_figure(step, parameter)
    st.plotly_chart(step_figure, width="stretch", key="tr_step")
    st.caption(f"Loss on this batch {step.loss:.4f} ({step.loss_name}), learning rate {step.lr:g}; "
               f"the step took {step.seconds * 1000:.1f} ms on {step.device}.")

offer_report("train", ReportSection(
    f"Training {held['arch'].upper()} on {held['data']}",
    text=run.receipt(),
    figures=[curves, norms, ratios],
    numbers={k: v for k, v in run.receipt_dict().items() if not isinstance(v, dict)},
))
