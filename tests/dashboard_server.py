"""Start the Streamlit dashboard as a real server process, and drive it with Playwright.

Used by ``tests/test_dashboard_browser.py`` and ``benchmarks/dashboard.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboards" / "app.py"
CHROMIUM = os.environ.get("EXPLAINER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: The app root carries the script state: "initial", "running", "notRunning", "rerunRequested".
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
EXCEPTION = "[data-testid='stException']"
CHART = ".js-plotly-plot, [data-testid='stPlotlyChart']"


def chromium_path() -> str:
    """The Debian Chromium binary; a clear instruction when it is missing."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else None
    if not found:
        raise FileNotFoundError(
            "Chromium is not installed; the browser tests need it: run `apt-get install -y chromium` "
            f"(expected at {CHROMIUM})."
        )
    return found


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DashboardServer:
    """``python -m streamlit run dashboards/app.py`` (or ``app``) headless on a free port; a context manager.

    ``started`` (perf_counter at process start) and ``healthy`` (when ``/_stcore/health``
    first answered) let a benchmark time the cold start.
    """

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None, app: Path | None = None) -> None:
        self.app = app or APP
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.log = Path(tempfile.mkstemp(prefix="dashboard-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.started = self.healthy = 0.0

    def __enter__(self) -> DashboardServer:
        command = [sys.executable, "-m", "streamlit", "run", str(self.app), "--server.headless", "true",
                   "--server.fileWatcherType", "none", "--server.port", str(self.port),
                   "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
        self.started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Poll ``/_stcore/health`` until it answers ``ok``; fail with the server log if it never does."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        self.healthy = time.perf_counter()
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"streamlit did not become healthy within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server (this process only) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def wait_idle(page: Page, timeout: float = 60.0) -> None:
    """Wait until the script has finished its run and stays finished (two checks 300 ms apart)."""
    deadline = time.perf_counter() + timeout
    page.wait_for_timeout(150)  # let a rerun triggered just now start
    while True:
        remaining_ms = max(1.0, (deadline - time.perf_counter()) * 1000)
        page.wait_for_selector(IDLE, state="attached", timeout=remaining_ms)
        page.wait_for_timeout(300)
        if page.locator(IDLE).count() == 1:
            return
        if time.perf_counter() > deadline:
            raise TimeoutError("the Streamlit script kept running")


def open_page(page: Page, url: str, timeout: float = 90.0) -> None:
    """Load ``url`` and wait for the first complete script run."""
    page.goto(url, wait_until="domcontentloaded")
    wait_idle(page, timeout)


def screenshot(page: Page, path: Path, width: int = 1400, max_height: int = 4000) -> None:
    """Save the whole page: grow the viewport to the main block's height (the app scrolls inside it)."""
    height = page.evaluate(
        "() => { const b = document.querySelector(\"[data-testid='stMainBlockContainer']\");"
        " return b ? Math.ceil(b.scrollHeight) + 120 : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": width, "height": int(min(max(height, 800), max_height))})
    page.wait_for_timeout(400)  # plotly redraws at the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
