"""The "Where does the answer live?" page: alive on first load, and the numbers of explainer.patch / concepts / tcav."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import explainer
from explainer.models.layers import find_cam_layer

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"


@pytest.fixture
def mechanisms_page(monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.syspath_prepend(str(DASHBOARDS))
    at = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("views/mechanisms.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    return {chart.proto.id.rsplit("-", 1)[-1]: json.loads(chart.proto.spec) for chart in at.get("plotly_chart")}


def _values(trace: dict, name: str) -> np.ndarray:
    """A plotly array as numbers (plotly sends numpy arrays as base64 typed arrays)."""
    value = trace[name]
    if isinstance(value, dict) and "bdata" in value:
        import base64

        shape = [int(part) for part in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value, dtype=float)


def test_first_load_patches_the_cat_finds_concepts_and_patches_every_layer_as_the_library_does(mechanisms_page, bundled_classifier, photos):
    page = mechanisms_page
    charts = _charts(page)
    assert {"mechanisms_patch", "mechanisms_concepts"} <= set(charts)
    cat = photos["cat"]
    expected = explainer.patch(bundled_classifier, [cat], explainer.corrupt(bundled_classifier, [cat], "blur"),
                               granularity="position", progress=False)
    heat = charts["mechanisms_patch"]["data"][0]
    assert heat["type"] == "heatmap"
    np.testing.assert_allclose(_values(heat, "z").astype(float), expected.site_map(), atol=1e-5)
    text = " ".join(m.value for m in page.markdown)
    assert expected.verdict() in text and "concepts from the sample photos" in text

    # every layer, whole: the layers every signal passes through restore everything, and the verdict counts them
    page.radio(key="mechanisms_granularity").set_value("layer").run()
    assert not page.exception, [e.value for e in page.exception]
    bars = _charts(page)["mechanisms_patch"]["data"][0]
    assert bars["type"] == "bar" and len(bars["x"]) > 50
    assert any("sites restore at least 99%" in m.value for m in page.markdown)
    # the feature picture of the channel the cat's prediction relies on most, checked as the library checks it
    assert "mechanisms_feature" in _charts(page)
    layer = find_cam_layer(bundled_classifier).name
    channel = explainer.cam_channel_importance(bundled_classifier, [cat], layer=layer).top(1, image=0)[0]
    assert page.number_input(key=f"mechanisms_feature_channel_{layer}").value == channel
    picture = explainer.visualize_channel(bundled_classifier, layer=layer, channel=channel, steps=32, size=96)
    assert picture.verdict() in text
    # TCAV of the first texture for the cat's class, scored on the sample photos: the library's numbers
    textures = explainer.load_dataset("textures")
    concept, random = explainer.concept_sets(textures, textures.class_names[0], size=12, random=48)
    predicted = bundled_classifier.predict([cat], top_k=1)[0][0]
    tested = explainer.tcav(bundled_classifier, concept, random, layers=[layer], target=predicted.index,
                            inputs=list(photos.values()), progress=False)
    assert tested.verdict() in " ".join(m.value for m in page.markdown)
    scatter = _charts(page)["mechanisms_tcav"]["data"][-1]
    assert _values(scatter, "y").astype(float) == pytest.approx([tested.layers[0].score.mean], abs=1e-6)


def _switch_to(at: AppTest, text: str) -> None:
    picker = at.selectbox(key="model_choice")
    picker.set_value(next(option for option in picker.options if text in option)).run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_page_works_for_a_network_trained_in_the_dashboard_and_for_an_uploaded_vit(mechanisms_page):
    import timm
    from safetensors.torch import save
    from test_dashboard_apptest import open_page, train_digits, upload_checkpoint

    at = mechanisms_page
    trained = train_digits(at, epochs=2)
    _switch_to(at, f"on digits – {trained.test_accuracy:.1%}")
    open_page(at, "mechanisms")
    assert {"mechanisms_patch", "mechanisms_concepts", "mechanisms_tcav"} <= set(_charts(at))
    assert any("TCAV with 10 random reference sets" in m.value and "digits test images of that class" in m.value
               for m in at.markdown)
    assert any("smaller than the 16 px" in c.value for c in at.caption)  # an 8-px network gets no feature picture

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=3).eval()
    open_page(at, "your_model")
    upload_checkpoint(at, "vit.safetensors", save(vit.state_dict()), arch="vit_tiny_patch16_224",
                      labels="ant\nbee\ncat")
    open_page(at, "mechanisms")
    charts = _charts(at)
    assert {"mechanisms_patch", "mechanisms_concepts", "mechanisms_tcav", "mechanisms_feature"} <= set(charts)
    assert charts["mechanisms_patch"]["data"][0]["type"] == "heatmap"  # the ViT's 14×14 token grid
    assert _values(charts["mechanisms_patch"]["data"][0], "z").shape == (14, 14)
