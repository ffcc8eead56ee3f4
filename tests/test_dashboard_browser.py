"""The dashboard in a real headless Chromium: every page is alive on first load; learners stay apart.

One ``python -m streamlit run dashboards/app.py`` server for the module, one Chromium, one browser
context per learner (its own cookies, hence its own Streamlit session). The first-load walk saves
``docs/screenshots/<page>.png`` – the README's screenshots. Without Chromium these tests skip with
the reason (fail under ``CI=true``): see ``tests/conftest.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
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

pytestmark = pytest.mark.browser
SCREENSHOTS = REPO / "docs" / "screenshots"
#: URL path of every page → the heading it shows (and its screenshot name).
PAGES = {"": ("home", "Open up a neural network"), "black_box": ("black_box", "Not a black box"),
         "train": ("train", "Train on your laptop"), "small_data": ("small_data", "Small data is enough"),
         "playground": ("playground", "Playground"), "your_model": ("your_model", "Your model"),
         "mechanisms": ("mechanisms", "Where does the answer live?"), "report": ("report", "Report")}


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(chromium) -> Iterator[DashboardServer]:
    with DashboardServer(env={"OMP_NUM_THREADS": "1"}) as running:
        yield running


def learner(chromium):
    """A fresh browser context (a new learner) with one tab."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    return context, tab


def assert_healthy(page, server: DashboardServer) -> None:
    errors = page.locator(EXCEPTION)
    assert errors.count() == 0, f"{page.url} shows an exception: {errors.first.inner_text()}\n{server.log_tail()}"


def charts_drawn(page) -> int:
    """Plotly charts that have drawn their SVG."""
    return page.locator(".js-plotly-plot .main-svg").count()


def visit(page, link: str, heading: str) -> None:
    """Go to a page through the sidebar (the same session) and wait for its run."""
    page.locator("[data-testid='stSidebarNavLink']", has_text=link).first.click()
    page.locator("h1", has_text=heading).first.wait_for()
    wait_idle(page, timeout=120)


def picker_options(page) -> list[str]:
    """The labels in the sidebar's model picker (opened and closed again)."""
    box = page.locator(".st-key-model_choice [role='combobox']").first
    box.click()
    page.locator("[role='option']").first.wait_for()
    options = page.locator("[role='option']").all_inner_texts()
    box.press("Escape")
    return options


def pick_model(page, text: str) -> None:
    """Choose the picker option containing ``text``."""
    page.locator(".st-key-model_choice [role='combobox']").first.click()
    page.get_by_role("option").filter(has_text=text).first.click()
    wait_idle(page, timeout=120)


def train_on_train_page(page, server: DashboardServer, arch: str = "cnn") -> None:
    """Open the Train page (new session) and train the default digits network (``arch`` cnn or mlp)."""
    open_page(page, f"{server.url}/train", timeout=120)
    if arch == "mlp":
        page.locator(".st-key-tr_arch label", has_text="fully connected").click()
        wait_idle(page)
    page.locator(".st-key-tr_train button").click()
    page.locator("[data-testid='stMetric']", has_text="Test accuracy").first.wait_for()
    wait_idle(page, timeout=120)
    assert_healthy(page, server)


@pytest.mark.slow
def test_every_page_draws_on_first_load_without_a_click(server: DashboardServer, chromium) -> None:
    context, page = learner(chromium)
    try:
        seconds = {}
        for path, (name, heading) in PAGES.items():
            started = time.perf_counter()
            page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")  # a new session: a true first load
            page.locator("h1", has_text=heading).first.wait_for()
            page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached")
            seconds[name] = time.perf_counter() - started
            wait_idle(page, timeout=120)
            assert_healthy(page, server)
            assert charts_drawn(page) >= 1, f"{name} drew no chart on first load"
            screenshot(page, SCREENSHOTS / f"{name}.png")
        print("seconds to the first chart:", {k: round(v, 2) for k, v in seconds.items()})
    finally:
        context.close()


def test_train_then_look_inside_it_on_the_black_box_page(server: DashboardServer, chromium) -> None:
    context, page = learner(chromium)
    try:
        train_on_train_page(page, server)
        visit(page, "Not a black box", "Not a black box")
        pick_model(page, "Your CNN on digits")
        page.locator(".st-key-bb_grid .imagelayer image").nth(1).wait_for(state="attached")  # attribution maps
        page.locator(".st-key-bb_maps_conv1 .heatmaplayer").first.wait_for(state="attached")  # activations
        page.locator(".st-key-bb_filters").first.wait_for(state="attached")  # its learned first-layer filters
        assert_healthy(page, server)
        assert page.locator("[data-testid='stCaptionContainer']", has_text="test images right").count() >= 1
    finally:
        context.close()


def test_two_learners_never_see_each_others_trained_models(server: DashboardServer, chromium) -> None:
    (first_context, first), (second_context, second) = learner(chromium), learner(chromium)
    try:
        train_on_train_page(first, server, arch="cnn")
        train_on_train_page(second, server, arch="mlp")
        mine, theirs = picker_options(first), picker_options(second)
        assert any("Your CNN on digits" in o for o in mine) and not any("MLP" in o for o in mine), mine
        assert any("Your MLP on digits" in o for o in theirs) and not any("CNN" in o for o in theirs), theirs
    finally:
        first_context.close()
        second_context.close()


def test_a_copied_playground_link_reopens_the_experiment(server: DashboardServer, chromium) -> None:
    context, page = learner(chromium)
    try:
        open_page(page, f"{server.url}/playground?dataset=xor&hidden=3&epochs=30&lr=0.1", timeout=120)
        assert_healthy(page, server)
        page.locator(".st-key-pg_boundary .heatmaplayer").first.wait_for(state="attached")
        assert page.locator("[data-testid='stMetric']", has_text="Parameters").locator(
            "[data-testid='stMetricValue']").inner_text() == "17"  # 2·3+3 + 3·2+2: the link's 3-neuron network
        assert "hidden=3" in page.url and "epochs=30" in page.url
        assert page.locator(CHART).count() >= 4
    finally:
        context.close()
