"""Train on your laptop: a real CNN learns live on this CPU, with a receipt of what it cost – then look inside it."""

from __future__ import annotations

import streamlit as st
import torch
from common import (
    add_learner_model,
    dataset,
    learner_models,
    offer_report,
    request_model,
    shows_errors,
    url_choice,
    url_option,
    url_value,
    write_url,
)
from sections.experiment import render_experiment_section
from training_queue import training_turn

import explainer
from explainer import ReportSection
from explainer.learn.architectures import ACTIVATIONS
from explainer.learn.training_options import OPTIMIZERS
from explainer.plots.datasets import sample_grid
from explainer.plots.inside import anatomy_figure
from explainer.plots.training import gradient_norms, learning_step_figure, training_curves, update_ratios

#: This learner's latest run (model + telemetry) lives in the session, never in a shared cache.
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
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]
BATCH_SIZES = [8, 16, 32, 64, 128, 256]
#: URL parameter → widget key (a copied link reopens the same experiment).
URL_KEYS = {"dataset": "tr_dataset", "arch": "tr_arch", "channels": "tr_channels", "hidden": "tr_hidden",
            "activation": "tr_activation", "epochs": "tr_epochs", "target": "tr_target", "optimizer": "tr_optimizer",
            "lr": "tr_lr", "batch": "tr_batch", "limit": "tr_limit"}


def parse_widths(text: str, label: str) -> tuple[int, ...]:
    """'16, 32' → (16, 32); anything else is a clear error on the page."""
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise explainer.InputError(
            f"{label} must be whole numbers separated by commas, e.g. 16, 32 – got {text!r}."
        ) from None


@st.cache_data(max_entries=32, show_spinner=False)
def untrained_anatomy(name: str, arch: str, spec_key: str, _spec: dict) -> explainer.Anatomy:
    """The anatomy of the network these settings build, before any training (seed 0, same for everyone)."""
    data = dataset(name)
    model = explainer.build_model(arch, data, seed=0, **_spec)
    return explainer.model_anatomy(explainer.Classifier.from_module(model, dataset=data, name=f"{arch.upper()} for {name}"))


def settings_panel() -> dict:
    """Every training setting (defaults from the URL), returned as one dict."""
    names = list(DATASETS)
    name = st.selectbox("Dataset", names, index=url_choice("dataset", names, "digits"),
                        format_func=lambda n: f"{n} – {DATASETS[n]}", key="tr_dataset")
    limit = st.number_input("Training images (torchvision sets)", 1000, 60000, url_value("limit", 10000), step=1000,
                            key="tr_limit") if name in LIMITED else None
    arch = st.radio("Network", ["cnn", "mlp"], index=url_choice("arch", ["cnn", "mlp"], "cnn"), horizontal=True,
                    key="tr_arch", format_func={"cnn": "convolutional (CNN)", "mlp": "fully connected (MLP)"}.get)
    channels = st.text_input("Convolution channels", url_value("channels", "16,32"), key="tr_channels",
                             disabled=arch != "cnn")
    hidden = st.text_input("Hidden layer widths", url_value("hidden", "64"), key="tr_hidden")
    activations = list(ACTIVATIONS)
    activation = st.selectbox("Activation", activations, index=url_choice("activation", activations, activations[0]),
                              key="tr_activation")
    epochs = st.slider("Epochs (at most)", 1, 50, url_value("epochs", 15), key="tr_epochs")
    target = st.slider("Stop at test accuracy", 0.5, 1.0, url_value("target", 0.97), step=0.01, key="tr_target",
                       help="Training stops as soon as the test accuracy reaches this (1.0 = never early).")
    optimizers = list(OPTIMIZERS)
    optimizer = st.selectbox("Optimizer", optimizers, index=url_choice("optimizer", optimizers, "adam"),
                             key="tr_optimizer")
    lr = st.select_slider("Learning rate", LEARNING_RATES, value=url_option("lr", LEARNING_RATES, 1e-3), key="tr_lr")
    batch_size = st.select_slider("Batch size", BATCH_SIZES, value=url_option("batch", BATCH_SIZES, 32), key="tr_batch")
    values = {"dataset": name, "arch": arch, "channels": channels, "hidden": hidden, "activation": activation,
              "epochs": epochs, "target": target, "optimizer": optimizer, "lr": lr, "batch": batch_size}
    if limit is not None:
        values["limit"] = int(limit)
    write_url(values)
    return {**values, "limit": limit}


def _train_now(settings: dict, data: explainer.Dataset, spec: dict) -> tuple[explainer.TrainingRun, torch.nn.Module]:
    """Build and fit the network live: one progress update per epoch."""
    epochs = settings["epochs"]
    model = explainer.build_model(settings["arch"], data, seed=0, **spec)
    progress = st.progress(0.0, text="Starting…")
    board = st.empty()

    def on_epoch(stats: explainer.EpochStats) -> None:
        """Show progress after an epoch."""
        progress.progress(stats.epoch / epochs, text=(
            f"epoch {stats.epoch}/{epochs} · {stats.elapsed:.1f} s · test accuracy {stats.test_accuracy:.1%}"))
        board.markdown(f"**Epoch {stats.epoch}**: train loss {stats.train_loss:.3f}, "
                       f"test accuracy {stats.test_accuracy:.1%}, {stats.samples_per_second:,.0f} images/s")

    target = settings["target"]
    run = explainer.fit(model, data, epochs=epochs, lr=settings["lr"], optimizer=settings["optimizer"],
                        batch_size=settings["batch"], target_accuracy=target if target < 1.0 else None,
                        callback=on_epoch, device="cpu")
    progress.empty()
    board.empty()
    return run, model


def train(settings: dict, data: explainer.Dataset, spec: dict) -> None:
    """Train live (one progress update per epoch) and keep the model in this learner's picker."""
    arch = settings["arch"]
    with training_turn(st.empty()):
        run, model = _train_now(settings, data, spec)
    number = 1 + sum(1 for held in learner_models().values() if held["entry"].kind == "trained")
    classifier = explainer.Classifier.from_module(model, dataset=data, name=f"{arch.upper()} on {data.name} (run {number})")
    label = f"Your {arch.upper()} on {data.name} – {run.test_accuracy:.1%} (run {number})"
    key = add_learner_model(label, "trained", classifier, images=settings["dataset"], run=run,
                            note=f"trained by you in this session: {run.receipt()}")
    st.session_state[RUN_KEY] = {"run": run, "arch": arch, "spec": spec, "data": data.name,
                                 "name": settings["dataset"], "model_key": key}


def before_training(data: explainer.Dataset, settings: dict, spec: dict) -> None:
    """What the network will learn from and what it is, before a single step."""
    st.plotly_chart(sample_grid(data), width="stretch", key="tr_samples")
    facts = untrained_anatomy(settings["dataset"], settings["arch"], repr(sorted(spec.items())), spec)
    st.plotly_chart(anatomy_figure(facts), width="stretch", key="tr_anatomy")
    st.caption(f"The untrained network: {facts.total_params:,} parameters, all random – press **Train** and "
               "watch them learn. The default digits CNN takes a second or two.")


def look_inside_button(held: dict) -> None:
    """'Look inside this network': the black-box page with this model and a test image selected."""
    key = held.get("model_key")
    if key not in learner_models():
        return
    if st.button("Look inside this network", type="primary", key="tr_look_inside", icon=":material/visibility:"):
        request_model(key)
        st.session_state["bb_test_image"] = 0
        st.switch_page("views/black_box.py")


def after_training(held: dict, data: explainer.Dataset, name: str) -> None:
    """The receipt, curves, training dynamics and one learning step of the latest run."""
    run: explainer.TrainingRun = held["run"]
    if run.diverged:
        st.error(run.message)
    else:
        st.success(run.receipt())
    look_inside_button(held)
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{run.test_accuracy:.1%}")
    cols[1].metric("Training time", f"{run.train_seconds:.2f} s", help=f"{run.epochs} epochs, {run.samples_seen:,} images")
    cols[2].metric("GFLOP/s", f"{run.gflops_per_second:.1f}",
                   help=f"{run.flops.training / 1e6:.2f} MFLOP per training image ({run.flops.description})")
    cols[3].metric("Share of peak", f"{run.peak_fraction:.0%}",
                   help=f"measured matrix-multiply peak {run.peak_gflops:.0f} GFLOP/s on {run.device_name}")
    curves = training_curves(run)
    st.plotly_chart(curves, width="stretch", key="tr_curves")

    st.header("Training dynamics")
    st.markdown("How big are the gradients in each layer, and how much does each step change the weights? "
                "Vanishing gradients show as layers stuck near zero; a healthy update/weight ratio sits near 10⁻³.")
    dyn_left, dyn_right = st.columns(2)
    norms, ratios = gradient_norms(run), update_ratios(run)
    dyn_left.plotly_chart(norms, width="stretch", key="tr_norms")
    dyn_right.plotly_chart(ratios, width="stretch", key="tr_ratios")

    st.header("One learning step, end to end")
    st.markdown(
        f"Everything above is this, repeated: take a batch of {STEP_BATCH} images, compute the loss, the gradient "
        "of the loss with respect to every weight, and move each weight a little against its gradient. Here is "
        "one such step on a freshly initialised copy of your network.")
    if held["name"] != name:
        st.info("Train on the selected dataset to see its learning step.")
    else:
        with shows_errors():
            fresh = explainer.build_model(held["arch"], data, seed=0, **held["spec"])
        parameters = [n for n, p in fresh.named_parameters() if p.ndim > 1]
        parameter = st.selectbox("Parameter", parameters, key="tr_parameter")
        step = explainer.learning_step(fresh, (data.x_train[:STEP_BATCH], data.y_train[:STEP_BATCH]),
                                       lr=run.config["lr"])
        st.plotly_chart(learning_step_figure(step, parameter), width="stretch", key="tr_step")
        st.caption(f"Loss on this batch {step.loss:.4f} ({step.loss_name}), learning rate {step.lr:g}; "
                   f"the step took {step.seconds * 1000:.1f} ms on {step.device}.")
    offer_report("train", ReportSection(
        f"Training {held['arch'].upper()} on {held['data']}", text=run.receipt(), figures=[curves, norms, ratios],
        numbers={k: v for k, v in run.receipt_dict().items() if not isinstance(v, dict)},
    ))


st.title("Train on your laptop")
st.markdown(
    "“You need a supercomputer to train a neural network.” Not this one: a convolutional network "
    "learns to read handwritten digits **here, on this CPU, while you watch**. Every run ends with a "
    "receipt – seconds, floating-point operations, and how much of this processor's measured peak "
    "the training used. Then look inside the network you trained."
)

settings_col, live = st.columns([1, 2], gap="large")
with settings_col:
    settings = settings_panel()
    start = st.button("Train", type="primary", key="tr_train", icon=":material/play_arrow:")
    with shows_errors():
        data = dataset(settings["dataset"], settings["limit"])
        spec: dict = {"hidden": parse_widths(settings["hidden"], "Hidden layer widths"),
                      "activation": settings["activation"]}
        if settings["arch"] == "cnn":
            spec["channels"] = parse_widths(settings["channels"], "Convolution channels")
        st.caption(f"{data.name}: {len(data.y_train):,} training and {len(data.y_test):,} test images of "
                   f"{' × '.join(map(str, data.input_shape))}, {data.num_classes} classes. Link to these settings: "
                   "copy this page's address.")

with live:
    if start:
        with shows_errors():
            train(settings, data, spec)
        st.rerun()  # redraw with the new model in the sidebar's picker
    held = st.session_state.get(RUN_KEY)
    if held is None:
        with shows_errors():
            before_training(data, settings, spec)
    else:
        after_training(held, data, settings["dataset"])
        with st.expander("What you are training (before training)"):
            with shows_errors(stop=False):
                before_training(data, settings, spec)

render_experiment_section("train", key="tr_experiment")
st.caption("Every network you train here joins the sidebar's model picker – in your session only.")
