"""The dashboard in a real headless Chromium: every page loads, draws and reacts; learners stay apart.

Starts ``python -m streamlit run dashboards/app.py`` on a free port, drives Debian's Chromium with
Playwright and saves a screenshot of every page to ``docs/screenshots/<page>.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch
from dashboard_server import (
    CHART,
    CHROMIUM_ARGS,
    EXCEPTION,
    REPO,
    DashboardServer,
    chromium_path,
    open_page,
    screenshot,
    wait_idle,
)
from safetensors.torch import save_file

pytestmark = pytest.mark.browser
SCREENSHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def server() -> Iterator[DashboardServer]:
    with DashboardServer() as running:
        yield running


@pytest.fixture(scope="module")
def chromium():
    try:
        path = chromium_path()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def tab(chromium):
    """A fresh browser context (its own cookies, hence its own Streamlit session) with one page."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    yield tab
    context.close()


def visit(page, server: DashboardServer, link: str, heading: str) -> None:
    """Go to a page through the sidebar (a new URL would start a new session) and wait for its run."""
    page.locator("[data-testid='stSidebarNavLink']", has_text=link).first.click()
    page.locator("h1", has_text=heading).first.wait_for()
    wait_idle(page)
    assert_healthy(page, server)


def assert_healthy(page, server: DashboardServer) -> None:
    errors = page.locator(EXCEPTION)
    assert errors.count() == 0, f"{page.url} shows an exception: {errors.first.inner_text()}\n{server.log_tail()}"


def assert_chart(page) -> None:
    page.locator(CHART).first.wait_for(state="visible")
    page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached")


def metric_value(page, text: str) -> str:
    """The value of the st.metric whose label contains ``text``."""
    metric = page.locator("[data-testid='stMetric']", has_text=text).first
    return metric.locator("[data-testid='stMetricValue']").inner_text()


def set_slider(page, key: str, presses: int) -> None:
    """Move the slider with widget key ``key`` by ``presses`` steps (keyboard: positive = right)."""
    for _ in range(abs(presses)):  # one rerun per step; a rerun may briefly show the old slider too
        page.locator(f".st-key-{key} input[type='range']").first.press("ArrowRight" if presses > 0 else "ArrowLeft")
        wait_idle(page)


@pytest.mark.slow
def test_every_page_loads_draws_and_reacts(server: DashboardServer, tab, tmp_path: Path) -> None:
    page = tab
    # Home: the anatomy of the bundled network.
    open_page(page, server.url)
    assert_healthy(page, server)
    assert_chart(page)
    assert "4.65 M" in metric_value(page, "Parameters")
    screenshot(page, SCREENSHOTS / "home.png")

    # Not a black box: attribution heatmaps; a control changes a shown number.
    visit(page, server, "Not a black box", "Not a black box")
    assert_chart(page)
    assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 1
    before = metric_value(page, "zeroed")
    set_slider(page, "bb_ablate_k", 4)
    assert_healthy(page, server)
    after = metric_value(page, "zeroed")
    assert before != after, f"the ablation slider did not change the probability ({before} → {after})"
    screenshot(page, SCREENSHOTS / "black_box.png")

    # Train on your laptop: a real CNN trains live; the receipt and charts appear.
    visit(page, server, "Train on your laptop", "Train on your laptop")
    page.locator(".st-key-tr_train button").click()
    page.locator("[data-testid='stMetric']", has_text="Test accuracy").first.wait_for()
    wait_idle(page)
    assert_healthy(page, server)
    assert_chart(page)
    receipt = page.locator("[data-testid='stAlert']").first.inner_text()
    assert re.search(r"trained to \d+\.\d% test accuracy in [\d.]+ s on this CPU", receipt), receipt
    screenshot(page, SCREENSHOTS / "train.png")

    # Small data: a live transfer-vs-scratch comparison with the default settings.
    visit(page, server, "Small data", "Small data is enough")
    page.get_by_role("button", name="Run the comparison").click()
    page.locator("[data-testid='stMetric']", has_text="examples per class").first.wait_for(timeout=180_000)
    wait_idle(page)
    assert_healthy(page, server)
    assert_chart(page)
    screenshot(page, SCREENSHOTS / "small_data.png")

    # Your model: upload real weights and an image through the browser.
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=3).state_dict(), str(weights))
    visit(page, server, "Your model", "Your model")
    page.get_by_text("at most 150 MB").wait_for()  # dashboards/.streamlit/config.toml is in force
    page.locator(".st-key-ym_arch input").fill("test_resnet")
    page.locator(".st-key-ym_arch input").press("Enter")
    wait_idle(page)
    page.locator(".st-key-ym_checkpoint input[type='file']").set_input_files(str(weights))
    page.get_by_text("Loaded tiny.safetensors").wait_for()
    wait_idle(page)
    assert_healthy(page, server)
    assert "3 classes" in page.locator("[data-testid='stAlert']").first.inner_text()
    assert_chart(page)
    assert page.locator(".js-plotly-plot .heatmaplayer").count() >= 1  # Grad-CAM of the uploaded network
    screenshot(page, SCREENSHOTS / "your_model.png")

    # Report: the black-box view collected above, downloaded as one self-contained HTML file.
    visit(page, server, "Report", "Report")
    assert_chart(page)
    with page.expect_download() as download_info:
        page.locator(".st-key-report_download button").click()
    html = Path(download_info.value.path()).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Plotly.newPlot(" in html
    assert re.search(r"<td>torch</td><td>\d", html) and "Why " in html
    screenshot(page, SCREENSHOTS / "report.png")


def train_playground(page, neurons_right: int) -> None:
    """Widen the first hidden layer by ``neurons_right`` and press Train (without waiting)."""
    if neurons_right:
        set_slider(page, "pg_neurons_0", neurons_right)
    page.locator(".st-key-pg_train_button button").click()


def test_two_learners_training_at_once_see_only_their_own_model(server: DashboardServer, chromium) -> None:
    contexts = [chromium.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        first, second = (context.new_page() for context in contexts)
        for tab in (first, second):
            tab.set_default_timeout(120_000)
            open_page(tab, f"{server.url}/playground")
            assert_healthy(tab, server)
        set_slider(second, "pg_neurons_0", 2)  # learner B: 6 neurons in layer 1, learner A keeps 4
        train_playground(first, 0)
        train_playground(second, 0)  # both scripts now train on the server at the same time
        expected = {first: "28", second: "38"}  # 2·4+4 + 4·2+2 + 2·2+2 and 2·6+6 + 6·2+2 + 2·2+2
        for tab, parameters in expected.items():
            tab.locator("[data-testid='stMetric']", has_text="Parameters").first.wait_for()
            wait_idle(tab)
            assert_healthy(tab, server)
            assert metric_value(tab, "Parameters") == parameters
            tab.locator(".st-key-pg_boundary .js-plotly-plot .heatmaplayer").wait_for(state="attached")
        # A rerun (moving the replay slider) still shows each learner's own network, and only it.
        for tab, parameters in expected.items():
            set_slider(tab, "pg_replay", -3)
            assert metric_value(tab, "Parameters") == parameters
            runs_table = tab.locator("[data-testid='stDataFrame']").last
            assert runs_table.locator("[role='row']").count() == 2  # header + this learner's one run
        screenshot(first, SCREENSHOTS / "playground.png")
    finally:
        for context in contexts:
            context.close()
