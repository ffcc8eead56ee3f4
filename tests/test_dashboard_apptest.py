"""Every dashboard page driven headless with Streamlit's AppTest: widgets in, library numbers out.

A notebook user and a dashboard user must see the same numbers, so each test computes what the
page shows with the library and compares.
"""

from __future__ import annotations

import io
import json
from importlib import metadata
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

import explainer

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
#: Seconds one script run may take (AppTest's default of 3 s is too short for a first model load).
TIMEOUT = 180


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app as `streamlit run` sees it: `dashboards/` on sys.path, the home page run once."""
    monkeypatch.syspath_prepend(str(DASHBOARDS))
    at = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_specs(at: AppTest) -> list[dict]:
    """The figure JSON of every plotly chart on the page."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_keys(at: AppTest) -> list[str]:
    """The widget keys of the page's plotly charts (Streamlit puts the user key at the end of the id)."""
    return [chart.proto.id.rsplit("-", 1)[-1] for chart in at.get("plotly_chart")]


def trace_types(at: AppTest) -> set[str]:
    return {trace.get("type", "scatter") for spec in chart_specs(at) for trace in spec["data"]}


def title_of(spec: dict) -> str:
    title = spec.get("layout", {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


def spec_by_title(at: AppTest, text: str) -> dict:
    """The first chart whose title contains ``text``."""
    for spec in chart_specs(at):
        if text in title_of(spec):
            return spec
    raise AssertionError(f"no chart titled with {text!r}: {[title_of(s) for s in chart_specs(at)]}")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def train_digits(at: AppTest, epochs: int = 3) -> explainer.TrainingRun:
    """Train the default digits CNN on the Train page (``epochs`` at most, no early stop)."""
    open_page(at, "train")
    at.slider(key="tr_epochs").set_value(epochs)
    at.slider(key="tr_target").set_value(1.0)
    at.button(key="tr_train").click()
    run(at)
    return at.session_state["train_run"]["run"]


# ------------------------------------------------------------------------------------ home
def test_home_shows_the_anatomy_of_the_bundled_model(app: AppTest, bundled_classifier) -> None:
    total = sum(p.numel() for p in bundled_classifier.module.parameters())
    shown = metrics(app)
    assert shown["Parameters"] == f"{total / 1e6:.2f} M"
    assert shown["Input"] == "3 × 224 × 224" and shown["Output"] == "1000"
    assert "bar" in trace_types(app)
    assert str(total) in json.dumps(chart_specs(app)[0]["layout"]["title"]).replace(",", "")
    assert app.selectbox(key="model_choice").value == "bundled:efficientnet_lite0"  # the one picker, in the sidebar


def test_the_shipped_home_anatomy_is_what_the_library_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The home page paints from results/home_anatomy.json: it must equal the library's anatomy and figure now."""
    monkeypatch.syspath_prepend(str(DASHBOARDS))
    import home_anatomy

    shipped, now = home_anatomy.read(), home_anatomy.compute()
    assert shipped["command"] == home_anatomy.COMMAND, "rerun the command in results/home_anatomy.json"
    for field in ("model_name", "total_params", "depth", "table"):
        assert shipped[field] == now[field], f"{field} drifted: rerun {home_anatomy.COMMAND}"
    assert shipped["figure"]["data"] == now["figure"]["data"], f"the figure drifted: rerun {home_anatomy.COMMAND}"
    assert title_of(shipped["figure"]) == title_of(now["figure"])


# ------------------------------------------------------------------------------- black box
def test_black_box_on_the_bundled_model_matches_the_library(app: AppTest, bundled_classifier, photos) -> None:
    at = open_page(app, "black_box")
    grid = chart_specs(at)[0]
    # each map is composited into its panel's image (explainer.plots.compact.compact_overlays), named by its method
    assert [t.get("name") for t in grid["data"] if t["type"] == "image"] == ["image", "gradcam", "saliency"]
    target = bundled_classifier.predict(photos["cat"], top_k=1)[0][0]
    assert at.selectbox(key="bb_target").value.index == target.index
    table = at.dataframe[0].value
    estimate = explainer.estimate_cost(bundled_classifier, photos["cat"], "saliency")
    assert int(table[table["method"] == "Saliency"]["model evaluations"].iloc[0]) == estimate.evaluations
    assert {"bb_grid", "bb_layer_stats", "bb_maps", "bb_importance", "bb_intervention"} <= set(chart_keys(at))

    at.slider(key="bb_ablate_k").set_value(16)
    run(at)
    importance = explainer.cam_channel_importance(bundled_classifier, photos["cat"], target=target.index)
    cut = explainer.ablate(bundled_classifier, photos["cat"], layer=importance.layer,
                           channels=importance.top(16, image=0), target=target.index)
    zeroed = next(m for m in at.metric if "zeroed" in m.label)
    assert "16 channel(s)" in zeroed.label and zeroed.value == f"{cut.prob_after[0]:.1%}"


def test_black_box_known_answer_task(app: AppTest) -> None:
    at = open_page(app, "black_box")
    at.button(key="bb_known_train").click()
    run(at)
    assert "test accuracy" in at.session_state["bb_known_answer"]["run"].receipt()
    table = next(d.value for d in at.dataframe if "mass inside the square" in d.value.columns)
    assert list(table["method"]) == ["Grad-CAM", "Saliency"]
    assert ((table["mass inside the square"] >= 0) & (table["mass inside the square"] <= 1)).all()
    assert (table["mass inside the square"] > table["square's share of the image"]).all()


def test_bad_upload_on_an_image_picker_is_explained(app: AppTest) -> None:
    at = open_page(app, "black_box")
    at.selectbox(key="bb_photo").set_value("Upload my own…")
    run(at)
    at.file_uploader(key="bb_upload").set_value(("notes.png", b"this is not a picture", "image/png"))
    run(at)
    assert "notes.png" in at.error[0].value and "image" in at.error[0].value


# ---------------------------------------------------------------------------------- train
def test_train_page_is_alive_before_training_and_its_receipt_matches_the_run(app: AppTest) -> None:
    at = open_page(app, "train")
    assert {"tr_samples", "tr_anatomy"} <= set(chart_keys(at))  # sample digits and the untrained network
    data = explainer.load_dataset("digits")
    untrained = explainer.build_model("cnn", data, seed=0, hidden=(64,), channels=(16, 32))
    count = sum(p.numel() for p in untrained.parameters())
    assert any(f"{count:,} parameters" in c.value for c in at.caption)

    trained = train_digits(at, epochs=3)
    assert trained.epochs == 3 and trained.dataset == "digits"
    assert at.success[0].value == trained.receipt()
    shown = metrics(at)
    assert shown["Test accuracy"] == f"{trained.test_accuracy:.1%}"
    assert shown["Training time"] == f"{trained.train_seconds:.2f} s"
    assert shown["Share of peak"] == f"{trained.peak_fraction:.0%}"
    assert shown["GFLOP/s"] == f"{trained.gflops_per_second:.1f}"
    curves = spec_by_title(at, "digits")
    assert {trace["name"] for trace in curves["data"]} >= {"train loss", "test accuracy"}
    step = spec_by_title(at, "One SGD step on conv1.weight")
    assert [t["type"] for t in step["data"]] == ["heatmap"] * 4
    # The trained network joined this learner's picker, named with its dataset and accuracy.
    picker = at.selectbox(key="model_choice")
    assert any(f"on digits – {trained.test_accuracy:.1%}" in option for option in picker.options)


def test_train_settings_live_in_the_url(app: AppTest) -> None:
    app.query_params.update({"arch": "mlp", "hidden": "32,16", "epochs": "4", "lr": "0.003"})
    at = open_page(app, "train")
    assert at.radio(key="tr_arch").value == "mlp" and at.text_input(key="tr_hidden").value == "32,16"
    assert at.slider(key="tr_epochs").value == 4 and at.select_slider(key="tr_lr").value == 0.003
    at.slider(key="tr_epochs").set_value(7)
    run(at)
    assert at.query_params["epochs"] == "7" and at.query_params["arch"] == "mlp"


def test_train_page_explains_bad_settings(app: AppTest) -> None:
    at = open_page(app, "train")
    at.text_input(key="tr_channels").set_value("16, x")
    run(at)
    assert "Convolution channels must be whole numbers" in at.error[0].value


def test_look_inside_the_network_just_trained(app: AppTest) -> None:
    at = app
    train_digits(at, epochs=4)
    held = at.session_state["train_run"]
    classifier = at.session_state["learner_models"][held["model_key"]]["classifier"]
    at.button(key="tr_look_inside").click()
    run(at)
    assert at.title[0].value == "Not a black box"
    assert at.selectbox(key="model_choice").value == held["model_key"]
    data = explainer.load_dataset("digits")
    expected = classifier.predict(data.x_test[0], top_k=5)[0]
    assert at.selectbox(key="bb_target").value.index == expected[0].index
    keys = set(chart_keys(at))
    layers = explainer.inside.activations.default_layers(classifier)
    assert {f"bb_maps_{layer}" for layer in layers} <= keys  # each layer's activation maps
    assert {"bb_grid", "bb_filters", "bb_importance"} <= keys  # attributions, learned filters, channels
    predicted = classifier.logits(data.x_test).argmax(dim=1)
    right = int((predicted == data.y_test).sum())
    assert any(f"{right} of {len(data.y_test)} test images right" in c.value for c in at.caption)
    assert any(k.startswith("bb_right_") for k in keys)
    assert any(k.startswith("bb_wrong_") for k in keys) == bool((predicted != data.y_test).any())
    grid = chart_specs(at)[0]
    explanation = explainer.explain(classifier, data.x_test[0], method="saliency", target=expected[0].index)
    heat = next(t for t in grid["data"] if t.get("name") == "saliency")
    from explainer.plots.compact import _decode  # the map is composited into its panel's image at the map's grid

    assert heat["type"] == "image" and _decode(heat["source"]).shape == (8, 8, 3)
    assert explanation.attributions.shape[-1] == 8


# ----------------------------------------------------------------------------- playground
def test_playground_draws_and_trains_on_first_load_and_times_every_run(app: AppTest) -> None:
    at = open_page(app, "playground")
    runs = at.session_state["playground_runs"]
    assert len(runs) == 1 and runs[0].config == explainer.PlaygroundConfig()  # the defaults, trained at once
    assert {"pg_boundary", "pg_losses", "pg_network", "pg_neurons"} <= set(chart_keys(at))
    boundary = spec_by_title(at, "circle after 100 epochs")
    assert boundary["data"][0]["type"] == "heatmap"
    at.slider(key="pg_epochs").set_value(20)
    at.slider(key="pg_neurons_0").set_value(6)
    at.button(key="pg_train_button").click()
    run(at)
    runs = at.session_state["playground_runs"]
    assert [r.config.hidden for r in runs] == [(4, 2), (6, 2)]
    shown = metrics(at)
    assert shown["Parameters"] == f"{runs[-1].training.parameters:,}" == "38"  # 2·6+6 + 6·2+2 + 2·2+2
    assert shown["Test accuracy"] == f"{runs[-1].test_accuracy:.1%}"
    assert list(at.dataframe[0].value["seconds"]) == pytest.approx([r.seconds for r in runs])
    assert at.query_params["hidden"] == "6,2" and at.query_params["epochs"] == "20"
    at.multiselect(key="pg_features").set_value([])
    at.button(key="pg_train_button").click()
    run(at)
    assert "features must be distinct names" in at.error[0].value


def test_playground_link_reopens_the_experiment(app: AppTest) -> None:
    app.query_params.update({"dataset": "xor", "hidden": "3", "epochs": "30", "lr": "0.1", "features": "x1,x2,x1*x2"})
    at = open_page(app, "playground")
    config = at.session_state["playground_runs"][-1].config
    assert (config.dataset, config.hidden, config.epochs, config.lr) == ("xor", (3,), 30, 0.1)
    assert config.features == ("x1", "x2", "x1*x2")
    expected = explainer.train_playground(config)
    assert metrics(at)["Test accuracy"] == f"{expected.test_accuracy:.1%}"  # same seed, same numbers


def test_playground_frames_start_untrained() -> None:
    frames: list = []
    run = explainer.train_playground(explainer.PlaygroundConfig(epochs=20), on_frame=frames.append)
    assert [f.epoch for f in frames] == [0, *sorted(run.snapshots)]
    assert frames[0].train_loss == [] and len(frames[-1].train_loss) == 20
    assert (frames[-1].output == run.snapshots[20]).all()


# ----------------------------------------------------------------------------- small data
@pytest.fixture(scope="module")
def shipped_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small finished studies standing in for results/ (fast strategies, two seeds)."""
    folder = tmp_path_factory.mktemp("results")
    for name in ("textures", "digits"):
        explainer.compare_transfer(name, shots=[1, 2], seeds=2, strategies=["pixels", "small_cnn"], steps=5,
                                   out=folder / f"transfer_{name}.jsonl")
    return folder


def test_small_data_shows_the_finished_comparison_on_first_load(app, shipped_folder, monkeypatch) -> None:
    monkeypatch.setenv("EXPLAINER_SHIPPED_RESULTS", str(shipped_folder))
    at = open_page(app, "small_data")
    assert {"sd_curve_textures", "sd_curve_digits"} <= set(chart_keys(at))
    shown = [m.value for m in at.markdown]
    for name in ("textures", "digits"):
        results = explainer.open_results(shipped_folder / f"transfer_{name}.jsonl")
        assert results.verdict(0.8) in shown
    assert "≈" in at.info[0].value and "runs" in at.info[0].value  # the estimate, before a live run
    reference = explainer.open_results(shipped_folder / f"transfer_{at.selectbox(key='sd_dataset').value}.jsonl")
    estimate = reference.estimate(at.multiselect(key="sd_strategies").value, at.multiselect(key="sd_shots").value,
                                  at.slider(key="sd_seeds").value)
    assert at.info[0].value == f"Estimate before you start: {estimate.words('shipped')}"  # the library's numbers


def test_small_data_runs_a_small_comparison_live(app, shipped_folder, monkeypatch) -> None:
    monkeypatch.setenv("EXPLAINER_SHIPPED_RESULTS", str(shipped_folder))
    at = open_page(app, "small_data")
    at.selectbox(key="sd_dataset").set_value("digits")
    at.multiselect(key="sd_shots").set_value([1, 2])
    at.multiselect(key="sd_strategies").set_value(["pixels", "small_cnn"])
    at.slider(key="sd_seeds").set_value(2)
    at.slider(key="sd_steps").set_value(10)
    run(at)
    at.button(key="sd_run").click()
    run(at)
    results = at.session_state["transfer_results"]
    assert sorted(results.table["strategy"].unique()) == ["pixels", "small_cnn"]
    assert results.verdict(0.8) in [m.value for m in at.markdown]
    shown = next(d.value for d in at.dataframe if "std" in d.value.columns)
    assert list(shown["mean"]) == pytest.approx(list(results.summary()["mean"]))


def test_small_data_opens_a_finished_results_file(app, shipped_folder, monkeypatch) -> None:
    monkeypatch.setenv("EXPLAINER_SHIPPED_RESULTS", str(shipped_folder))
    path = shipped_folder / "transfer_digits.jsonl"
    finished = explainer.open_results(path)
    at = open_page(app, "small_data")
    at.file_uploader(key="sd_upload").set_value(("digits.jsonl", path.read_bytes(), "application/jsonl"))
    at.button(key="sd_open").click()
    run(at)
    opened = at.session_state["transfer_results"]
    assert opened.table["accuracy"].tolist() == finished.table["accuracy"].tolist()
    broken = shipped_folder.parent / "broken.jsonl"
    broken.write_text("not json\n")
    at.file_uploader(key="sd_upload").set_value(None)
    at.text_input(key="sd_path").set_value(str(broken))
    at.button(key="sd_open").click()
    run(at)
    assert "broken.jsonl" in at.error[0].value


@pytest.mark.parametrize("dataset", ["textures", "digits"])
def test_shipped_studies_hold_ten_seeds_at_every_shot_level(dataset: str) -> None:
    """The shipped studies the Small data page and the README quote: ≥ 10 seeds per strategy and shot level,
    so the verdict rests on enough seeds (stats.MIN_SAMPLES) and says so."""
    results = explainer.open_results(DASHBOARDS.parent / "results" / f"transfer_{dataset}.jsonl")
    seeds = results.table.groupby(["strategy", "shots"])["seed"].nunique()
    assert seeds.min() >= 10, seeds
    assert set(results.table["shots"]) == {1, 2, 5, 10, 20, 50}
    assert "too few to name a winner" not in results.verdict()


# ------------------------------------------------------------------------------ your model
@pytest.fixture(scope="module")
def tiny_checkpoint() -> tuple[bytes, torch.nn.Module]:
    """A real timm network (test_resnet, 3 classes, 160 px) saved as safetensors."""
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3).eval()
    return save(model.state_dict()), model


def upload_checkpoint(at: AppTest, name: str, data: bytes, arch: str = "test_resnet", labels: str = "") -> AppTest:
    at.text_input(key="ym_arch").set_value(arch)
    at.text_area(key="ym_labels").set_value(labels)
    at.file_uploader(key="ym_checkpoint").set_value((name, data, "application/octet-stream"))
    return run(at)


def test_your_model_shows_what_is_loaded_then_the_upload(app: AppTest, tiny_checkpoint, photos) -> None:
    at = open_page(app, "your_model")
    assert metrics(at)["Classes"] == "1,000" and "ym_anatomy" in chart_keys(at)  # alive before any upload
    data, _ = tiny_checkpoint
    upload_checkpoint(at, "tiny.safetensors", data, labels="ant\nbee\ncat")
    assert "3 classes" in at.success[0].value and "160×160" in at.success[0].value
    assert at.selectbox(key="model_choice").value.startswith("uploaded:")
    expected = explainer.load_model(data, arch="test_resnet", labels=["ant", "bee", "cat"], device="cpu").predict(
        photos["cat"], top_k=3)[0]
    shown = at.dataframe[0].value
    assert list(shown["class"]) == [p.label for p in expected]
    assert list(shown["probability"]) == pytest.approx([p.probability for p in expected], abs=1e-5)
    overlay = spec_by_title(at, "Grad-CAM")
    assert [t.get("name") for t in overlay["data"] if t["type"] == "image"] == ["gradcam"]
    open_page(at, "black_box")  # every view works for the uploaded model
    assert "bb_grid" in chart_keys(at) and "bb_importance" in chart_keys(at)


def test_your_model_refuses_pickles_and_mismatched_architectures(app: AppTest, tiny_checkpoint) -> None:
    data, model = tiny_checkpoint
    at = open_page(app, "your_model")
    pickled = io.BytesIO()
    torch.save(model, pickled)
    upload_checkpoint(at, "whole_model.pt", pickled.getvalue())
    assert "arbitrary code" in at.error[0].value and "state_dict" in at.error[0].value
    upload_checkpoint(at, "tiny.safetensors", data, arch="resnet18")
    assert "does not match architecture 'resnet18'" in at.error[0].value
    assert not at.exception  # torch's size-mismatch error arrives as a ModelLoadError, not a traceback


# ---------------------------------------------------------------------------------- report
def test_report_page_collects_the_views_of_this_session(app: AppTest) -> None:
    at = open_page(app, "report")
    assert "Nothing collected yet" in at.info[0].value
    versions = at.dataframe[0].value
    assert dict(zip(versions["library"], versions["version"]))["torch"] == metadata.version("torch")
    open_page(at, "playground")  # trains its defaults on the first visit
    open_page(at, "report")
    assert at.multiselect(key="report_views").value == ["playground"]
    assert at.expander[0].label.startswith("Playground: circle")
    assert "heatmap" in trace_types(at)
    assert at.get("download_button")


# ------------------------------------------------------------------------- cached hub models
def test_a_timm_model_cached_on_this_machine_joins_the_picker(app: AppTest, tmp_path: Path, monkeypatch, photos) -> None:
    """Weights in the Hugging Face cache (here: a real test_resnet state dict) make the model pickable everywhere."""
    import common
    from huggingface_hub import constants
    from safetensors.torch import save_file

    snapshot = tmp_path / "models--timm--test_resnet.r160_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--timm--test_resnet.r160_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--test_resnet.r160_in1k" / "refs" / "main").write_text("0123abc")
    torch.manual_seed(0)
    save_file(timm.create_model("test_resnet").state_dict(), str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    common.cached_hub_models.clear()
    try:
        run(app)
        picker = app.selectbox(key="model_choice")
        assert "test_resnet (timm, ImageNet, cached)" in picker.options
        picker.set_value("timm:test_resnet")
        at = open_page(app, "black_box")
        expected = explainer.load_model("test_resnet", device="cpu").predict(photos["cat"], top_k=5)[0]
        assert at.selectbox(key="bb_target").value.index == expected[0].index
        assert {"bb_grid", "bb_maps", "bb_importance"} <= set(chart_keys(at))
    finally:
        common.cached_hub_models.clear()
