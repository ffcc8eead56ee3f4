"""Every dashboard page driven headless with Streamlit's AppTest: widgets in, library numbers out."""

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


def trace_types(at: AppTest) -> set[str]:
    return {trace.get("type", "scatter") for spec in chart_specs(at) for trace in spec["data"]}


def spec_by_title(at: AppTest, text: str) -> dict:
    """The first chart whose title contains ``text``."""
    for spec in chart_specs(at):
        title = spec.get("layout", {}).get("title", {})
        if text in (title.get("text", "") if isinstance(title, dict) else str(title)):
            return spec
    raise AssertionError(f"no chart titled with {text!r}")


# ------------------------------------------------------------------------------------ home
def test_home_shows_the_anatomy_of_the_bundled_model(app: AppTest, bundled_classifier) -> None:
    total = sum(p.numel() for p in bundled_classifier.module.parameters())
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Parameters"] == f"{total / 1e6:.2f} M"
    assert metrics["Input"] == "3 × 224 × 224" and metrics["Output"] == "1000"
    assert "bar" in trace_types(app)
    assert str(total) in json.dumps(chart_specs(app)[0]["layout"]["title"]).replace(",", "")


# ------------------------------------------------------------------------------- black box
def test_black_box_maps_evidence_and_intervention_match_the_library(app: AppTest, bundled_classifier, photos) -> None:
    at = open_page(app, "black_box")
    grid = chart_specs(at)[0]
    assert {t.get("name") for t in grid["data"] if t["type"] == "heatmap"} == {"gradcam", "saliency"}
    target = bundled_classifier.predict(photos["cat"], top_k=1)[0][0]
    assert at.selectbox(key="bb_target").value.index == target.index

    at.multiselect(key="bb_methods").set_value(["integrated_gradients"])
    run(at)
    at.slider(key="bb_ig_steps").set_value(8)
    run(at)
    table = at.dataframe[0].value.iloc[0]
    assert table["method"] == "Integrated Gradients" and table["model evaluations"] == 8 + 2
    assert table["estimated seconds"] > 0 and table["seconds"] > 0

    at.multiselect(key="bb_methods").set_value(["saliency"])
    at.toggle(key="bb_evidence").set_value(True)
    run(at)
    at.slider(key="bb_steps").set_value(5)
    at.slider(key="bb_seeds").set_value(1)
    at.checkbox(key="bb_randomize").set_value(False)
    run(at)
    assert [t.get("name") for t in chart_specs(at)[0]["data"] if t["type"] == "heatmap"] == ["saliency"]
    explanation = explainer.explain(bundled_classifier, photos["cat"], method="saliency", target=target.index)
    report = explainer.check_faithfulness(bundled_classifier, photos["cat"], explanation, steps=5, random_seeds=1,
                                          randomization=False)
    shown = at.dataframe[1].value.iloc[0]
    assert shown["method"] == "saliency"
    assert shown["deletion AUC"] == pytest.approx(report.mean_aucs["deletion"], abs=1e-6)
    assert shown["lerf_deletion AUC"] == pytest.approx(report.mean_aucs["lerf_deletion"], abs=1e-6)
    spec_by_title(at, "saliency")  # the deletion/insertion curves are drawn

    at.slider(key="bb_ablate_k").set_value(16)
    run(at)
    importance = explainer.cam_channel_importance(bundled_classifier, photos["cat"], target=target.index)
    cut = explainer.ablate(bundled_classifier, photos["cat"], importance.layer, importance.top(16, image=0),
                           target=target.index)
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
    assert "notes.png is not an image file that can be read" in at.error[0].value


# ---------------------------------------------------------------------------------- train
def test_train_page_receipt_matches_the_run(app: AppTest) -> None:
    at = open_page(app, "train")
    assert "press **Train**" in at.info[0].value
    at.slider(key="tr_epochs").set_value(3)
    at.slider(key="tr_target").set_value(1.0)
    at.button(key="tr_train").click()
    run(at)
    trained = at.session_state["train_run"]["run"]
    assert trained.epochs == 3 and trained.dataset == "digits"
    assert at.success[0].value == trained.receipt()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{trained.test_accuracy:.1%}"
    assert metrics["Training time"] == f"{trained.train_seconds:.2f} s"
    assert metrics["Share of peak"] == f"{trained.peak_fraction:.0%}"
    assert metrics["GFLOP/s"] == f"{trained.gflops_per_second:.1f}"
    curves = spec_by_title(at, "digits")
    assert {trace["name"] for trace in curves["data"]} >= {"train loss", "test accuracy"}
    step = spec_by_title(at, "One SGD step on conv1.weight")
    assert [t["type"] for t in step["data"]] == ["heatmap"] * 4


def test_train_page_explains_bad_settings(app: AppTest) -> None:
    at = open_page(app, "train")
    at.text_input(key="tr_channels").set_value("16, x")
    run(at)
    assert "Convolution channels must be whole numbers" in at.error[0].value


# ----------------------------------------------------------------------------- playground
def test_playground_trains_and_times_every_run(app: AppTest) -> None:
    at = open_page(app, "playground")
    at.slider(key="pg_epochs").set_value(20)
    at.button(key="pg_train_button").click()
    run(at)
    at.slider(key="pg_neurons_0").set_value(6)
    at.button(key="pg_train_button").click()
    run(at)
    runs = at.session_state["playground_runs"]
    assert [r.config.hidden for r in runs] == [(4, 2), (6, 2)]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == f"{runs[-1].training.parameters:,}" == "38"  # 2·6+6 + 6·2+2 + 2·2+2
    assert metrics["Test accuracy"] == f"{runs[-1].test_accuracy:.1%}"
    table = at.dataframe[0].value
    assert list(table["seconds"]) == pytest.approx([r.seconds for r in runs])
    boundary = spec_by_title(at, "circle after 20 epochs")
    assert boundary["data"][0]["type"] == "heatmap"
    at.multiselect(key="pg_features").set_value([])
    at.button(key="pg_train_button").click()
    run(at)
    assert "features must be distinct names" in at.error[0].value


# ----------------------------------------------------------------------------- small data
def test_small_data_runs_a_small_comparison_live(app: AppTest) -> None:
    at = open_page(app, "small_data")
    at.multiselect(key="sd_shots").set_value([1, 5])
    at.multiselect(key="sd_strategies").set_value(["linear_probe", "pixels"])
    at.slider(key="sd_steps").set_value(10)
    at.button[0].click()
    run(at)
    results = at.session_state["transfer_results"]
    assert sorted(results.table["strategy"].unique()) == ["linear_probe", "pixels"]
    curve = chart_specs(at)[0]
    assert {t["name"] for t in curve["data"] if t.get("showlegend", True) is not False} >= {"linear_probe", "pixels"}
    assert results.verdict(0.8) in [m.value for m in at.markdown]
    shown = at.dataframe[0].value
    assert list(shown["mean"]) == pytest.approx(list(results.summary()["mean"]))


def test_small_data_opens_a_finished_results_file(app: AppTest, tmp_path: Path) -> None:
    path = tmp_path / "digits.jsonl"
    finished = explainer.compare_transfer("digits", shots=[1, 2], seeds=2, strategies=["pixels", "small_cnn"],
                                          steps=5, out=path)
    at = open_page(app, "small_data")
    at.file_uploader(key="sd_upload").set_value(("digits.jsonl", path.read_bytes(), "application/jsonl"))
    at.button(key="sd_open").click()
    run(at)
    opened = at.session_state["transfer_results"]
    assert opened.resumed == len(finished.table) == 8  # nothing recomputed
    assert opened.table["accuracy"].tolist() == finished.table["accuracy"].tolist()
    assert opened.verdict(0.8) in [m.value for m in at.markdown]

    at.file_uploader(key="sd_upload").set_value(None)
    at.text_input(key="sd_path").set_value(str(path))
    at.button(key="sd_open").click()
    run(at)
    assert at.session_state["transfer_results"].out == str(path)

    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    at.text_input(key="sd_path").set_value(str(broken))
    at.button(key="sd_open").click()
    run(at)
    assert "broken.jsonl is not a results file written by compare_transfer" in at.error[0].value


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


def test_your_model_predicts_with_the_uploaded_weights(app: AppTest, tiny_checkpoint, tmp_path: Path) -> None:
    data, _ = tiny_checkpoint
    at = open_page(app, "your_model")
    assert "Upload a checkpoint" in at.info[0].value
    upload_checkpoint(at, "tiny.safetensors", data, labels="ant\nbee\ncat")
    assert "3 classes" in at.success[0].value and "160×160" in at.success[0].value

    path = tmp_path / "tiny.safetensors"
    path.write_bytes(data)
    expected = explainer.load_model(path, arch="test_resnet", labels=["ant", "bee", "cat"], device="cpu").predict(
        explainer.sample_images()["cat"], top_k=3
    )[0]
    shown = at.dataframe[0].value
    assert list(shown["class"]) == [p.label for p in expected]
    assert list(shown["probability"]) == pytest.approx([p.probability for p in expected], abs=1e-5)
    overlay = chart_specs(at)[0]
    assert [t.get("name") for t in overlay["data"] if t["type"] == "heatmap"] == ["gradcam"]
    assert "layer4" in at.caption[-1].value  # the CAM layer found in the uploaded ResNet


def test_your_model_refuses_pickles_and_mismatched_architectures(app: AppTest, tiny_checkpoint) -> None:
    data, model = tiny_checkpoint
    at = open_page(app, "your_model")
    pickled = io.BytesIO()
    torch.save(model, pickled)
    upload_checkpoint(at, "whole_model.pt", pickled.getvalue())
    assert "Refused to load upload_whole_model.pt" in at.error[0].value
    assert "arbitrary code" in at.error[0].value and "state_dict" in at.error[0].value

    upload_checkpoint(at, "tiny.safetensors", data, arch="resnet18")
    assert "does not match architecture 'resnet18'" in at.error[0].value
    assert not at.exception  # torch's size-mismatch error arrives as a ModelLoadError, not a traceback
    upload_checkpoint(at, "tiny.safetensors", data, labels="only one label")
    assert "does not match architecture 'test_resnet'" in at.error[0].value and "fc.weight" in at.error[0].value


# ---------------------------------------------------------------------------------- report
def test_report_page_collects_the_views_of_this_session(app: AppTest) -> None:
    at = open_page(app, "report")
    assert "Nothing collected yet" in at.info[0].value
    versions = at.dataframe[0].value
    assert dict(zip(versions["library"], versions["version"]))["torch"] == metadata.version("torch")

    open_page(at, "playground")
    at.slider(key="pg_epochs").set_value(10)
    at.button(key="pg_train_button").click()
    run(at)
    open_page(at, "report")
    assert at.multiselect(key="report_views").value == ["playground"]
    assert at.expander[0].label.startswith("Playground: circle")
    assert "heatmap" in trace_types(at)
    assert at.get("download_button")
