"""Dashboard speed in a real headless Chromium: cold start and rerun after changing the method.

Cold start = process start → /_stcore/health answers → first chart drawn in the browser, for the
explainer app and for a peer: a one-chart Streamlit app started the same way in the same run.
Rerun = time from choosing a method on *Not a black box* until the new map is drawn and the
script is idle, with the shared model cached: adding Input × Gradient (a new explanation, fast
method) and removing it again (everything cached). Its peer is ``explain()`` of the same method
called directly in this process. Targets (2 cores): cold start ≤ 10 s, rerun ≤ 1 s.

    .venv/bin/python benchmarks/dashboard.py [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_server import CHROMIUM_ARGS, IDLE, DashboardServer, chromium_path, open_page  # noqa: E402

PEER_APP = '''
import numpy as np
import plotly.graph_objects as go
import streamlit as st

st.title("peer")
st.plotly_chart(go.Figure(go.Heatmap(z=np.eye(8, dtype=np.float32))))
'''
FIRST_CHART = ".js-plotly-plot .main-svg"
PHOTOS = ("cat", "coffee", "rocket", "camera", "china", "astronaut")
ADDED_METHOD = "Input × Gradient (gradient)"


def cold_start(browser, app: Path | None) -> dict[str, float]:
    """Seconds from process start to health OK and to the first chart drawn."""
    with DashboardServer(app=app) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(server.url, wait_until="domcontentloaded")
        page.locator(FIRST_CHART).first.wait_for(state="attached")
        charted = time.perf_counter()
        page.close()
        return {"health": server.healthy - server.started, "first_chart": charted - server.started}


def grid_maps(page) -> int:
    return page.evaluate("() => document.querySelectorAll(\".st-key-bb_grid .heatmaplayer .hm\").length")


def timed(page, action, maps: int) -> float:
    """Seconds from ``action()`` until the methods grid shows ``maps`` maps and the script is idle."""
    started = time.perf_counter()
    action()
    page.wait_for_function(
        f"() => document.querySelectorAll(\".st-key-bb_grid .heatmaplayer .hm\").length === {maps}"
        f" && document.querySelector(\"{IDLE}\") !== null",
        polling=10,
    )
    return time.perf_counter() - started


def choose(page, key: str, option: str) -> None:
    page.locator(f".st-key-{key} input[role='combobox']").first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def remove_last(page, key: str) -> None:
    """Remove the last chip of a multiselect with the keyboard (Backspace in its empty input)."""
    field = page.locator(f".st-key-{key} input[role='combobox']").first
    field.click()
    field.press("Backspace")
    field.press("Escape")


def reruns(browser, repeats: int) -> dict[str, list[float]]:
    """Rerun seconds after adding a new method (computed) and removing it again (cached), per photo."""
    added, removed = [], []
    with DashboardServer() as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        open_page(page, f"{server.url}/black_box", timeout=180)
        for photo in PHOTOS[:repeats]:
            if photo != "cat":
                choose(page, "bb_photo", photo)
                page.wait_for_function(f"() => document.querySelector(\"{IDLE}\") !== null")
                page.wait_for_timeout(500)
            base = grid_maps(page)
            added.append(timed(page, lambda: choose(page, "bb_methods", ADDED_METHOD), base + 1))
            removed.append(timed(page, lambda: remove_last(page, "bb_methods"), base))
        page.close()
    return {"add_method": added, "remove_method": removed}


def library_peer(repeats: int) -> list[float]:
    """explain() of the same method on the same photos, called directly (after one warm-up call)."""
    import explainer

    model = explainer.load_model()
    photos = explainer.sample_images()
    explainer.explain(model, photos["cat"], method="input_x_gradient")
    return [explainer.explain(model, photos[name], method="input_x_gradient").seconds for name in PHOTOS[:repeats]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per app and photos for reruns (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        peer_app = Path(folder) / "peer.py"
        peer_app.write_text(PEER_APP)
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        ours = [cold_start(browser, None) for _ in range(args.repeats)]
        peers = [cold_start(browser, peer_app) for _ in range(args.repeats)]
        rerun = reruns(browser, args.repeats)
        browser.close()
    direct = library_peer(args.repeats)
    median = statistics.median
    result = {
        "cold_start_health_s": median(r["health"] for r in ours),
        "cold_start_first_chart_s": median(r["first_chart"] for r in ours),
        "peer_cold_start_first_chart_s": median(r["first_chart"] for r in peers),
        "rerun_add_method_s": median(rerun["add_method"]),
        "rerun_remove_method_cached_s": median(rerun["remove_method"]),
        "explain_direct_s": median(direct),
        "repeats": args.repeats,
        "raw": {"cold_start": ours, "peer_cold_start": peers, **rerun, "explain_direct": direct},
    }
    result["cold_start_ratio_vs_peer"] = result["cold_start_first_chart_s"] / result["peer_cold_start_first_chart_s"]
    result["rerun_add_minus_direct_s"] = result["rerun_add_method_s"] - result["explain_direct_s"]
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"cold start, process → health OK:          {result['cold_start_health_s']:.2f} s (median of {args.repeats})")
    print(f"cold start, process → first chart drawn:  {result['cold_start_first_chart_s']:.2f} s "
          f"(peer one-chart app {result['peer_cold_start_first_chart_s']:.2f} s, "
          f"ratio {result['cold_start_ratio_vs_peer']:.1f}×; target ≤ 10 s)")
    print(f"rerun, add Input × Gradient:               {result['rerun_add_method_s']:.2f} s "
          f"(explain() alone {result['explain_direct_s']:.3f} s; target ≤ 1 s)")
    print(f"rerun, remove it again (all cached):       {result['rerun_remove_method_cached_s']:.2f} s")


if __name__ == "__main__":
    main()
