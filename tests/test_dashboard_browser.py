"""The dashboard in a real headless Chromium: every page loads, draws and reacts; learners stay apart.

Starts ``python -m streamlit run dashboards/app.py`` on a free port, drives Debian's Chromium with
Playwright and saves a screenshot of every page to ``docs/screenshots/<page>.png``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest
import timm
import torch
from safetensors.torch import save_file

from dashboard_server import (
    CHART, CHROMIUM_ARGS, EXCEPTION, REPO, DashboardServer, chromium_path, open_page, screenshot, wait_idle,
)

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
    thumb = page.locator(f".st-key-{key} input[type='range']")
    thumb.focus()
    for _ in range(abs(presses)):
        thumb.press("ArrowRight" if presses > 0 else "ArrowLeft")
    wait_idle(page)


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
    set_slider(page, "bb_ablate_k", 10)
    assert_healthy(page, server)
    after = metric_value(page, "zeroed")
    assert before != after, f"the ablation slider did not change the probability ({before} → {after})"
    screenshot(page, SCREENSHOTS / "black_box.png")

    # Your model: upload real weights and an image through the browser.
    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=3).state_dict(), str(weights))
    visit(page, server, "Your model", "Your model")
    page.locator(".st-key-ym_arch input").fill("test_resnet")
    page.locator(".st-key-ym_arch input").press("Enter")
    wait_idle(page)
    page.locator(".st-key-ym_checkpoint input[type='file']").set_input_files(str(weights))
    page.get_by_text("Loaded tiny.safetensors").wait_for()
    wait_idle(page)
    assert_healthy(page, server)
    assert "3 classes" in page.locator("[data-testid='stAlert']").first.inner_text()
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
