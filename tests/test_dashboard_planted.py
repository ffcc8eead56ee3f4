"""The "Which explanations find the truth?" page, driven headless: shipped card on first load, then a live run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explainer.evidence.planted import open_planted, planted_benchmark
from explainer.evidence.planted_settings import PlantedSettings

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
TIMEOUT = 180
TINY = PlantedSettings(methods=("saliency", "control:random"), n_train=200, n_test=80, epochs=3, images=8,
                       timeline_epochs=3, timeline_methods=("saliency", "control:random"))


@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shipped")
    planted_benchmark(seeds=2, settings=TINY, out=folder / "planted.jsonl", timeline=True, progress=False)
    return folder


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, shipped_dir: Path) -> AppTest:
    monkeypatch.setenv("EXPLAINER_SHIPPED_RESULTS", str(shipped_dir))
    monkeypatch.syspath_prepend(str(DASHBOARDS))
    at = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("views/planted.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_first_load_shows_the_shipped_report_card_and_timeline(page: AppTest, shipped_dir: Path) -> None:
    titles = [spec["layout"]["title"]["text"] for spec in _specs(page)]
    assert any("Which explanations find the truth" in t for t in titles)
    assert any("does the explanation notice" in t for t in titles)
    report = open_planted(shipped_dir / "planted.jsonl")
    assert report.verdict() in [m.value for m in page.markdown]
    table = page.dataframe[0].value
    assert list(table["method"]) == [row["method"] for row in report.to_dict()["rows"]]


def test_a_live_run_shows_its_estimate_and_its_own_report(page: AppTest) -> None:
    page.slider[1].set_value(200)
    page.slider[2].set_value(2)
    page.multiselect[0].set_value(["saliency"])
    page.button[0].click().run()
    assert not page.exception, [e.value for e in page.exception]
    assert any(info.value.startswith("Estimated") for info in page.info)
    cards = [spec for spec in _specs(page) if "find the truth" in spec["layout"]["title"]["text"]]
    assert len(cards) == 2  # the shipped card and the live one
    live = page.session_state["planted_live_report"]["payload"]
    assert live["settings"]["n_train"] == 200 and live["settings"]["epochs"] == 2
    assert {row["kind"] for row in live["rows"]} >= {"reliance", "pixels", "data"}
