"""A classroom at once: 8 learners train the digits CNN and then switch attribution methods, all together.

One dashboard server and one headless Chromium on 127.0.0.1; each learner is its own browser
context (its own Streamlit session), all driven at the same time with Playwright's async API:

1. open the Train page (time to its first chart: sample digits and the untrained network),
2. train the default digits CNN (``?epochs=E&target=1.0`` with a different E per learner, so
   each learner's numbers differ and can be told apart),
3. press "Look inside this network" (the black-box page opens with that model picked; time to
   its first attribution and activation charts), read the sidebar picker, then add Input × Gradient
   and Integrated Gradients one after the other (time until each new map is drawn).

Before the learners arrive one visit to the home page and the black-box page warms the server (imports,
the bundled model, which loads in the background after the first page), as a teacher would; ``--cold``
skips it. The CPU seconds of the server and of the headless browser are reported apart: here the 8
browsers share the server's cores, in a classroom they run on the learners' machines.

Reported: time to first chart – every "action → chart drawn" wait pooled (median, p95) and per
step –, failures (a step that raised or timed out), exceptions (Streamlit exception boxes on the
pages plus tracebacks in the server log), the server's peak resident memory (the process and its
children, sampled every 0.2 s), and whether each learner saw only its own model and numbers (its
picker lists exactly one trained model, whose accuracy is the one its Train page showed, and the
black-box page counts the same share of test digits right). Target (2 cores): no failure, no
exception, p95 ≤ 30 s. The whole run is bounded by ``--timeout``.

    .venv/bin/python benchmarks/dashboard_load.py [--learners 8] [--timeout 900] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_server import CHROMIUM_ARGS, EXCEPTION, IDLE, DashboardServer, chromium_path  # noqa: E402

ADDED_METHODS = ("Input × Gradient (gradient)", "Integrated Gradients (gradient)")
GRID_MAPS = "(document.querySelectorAll(\".st-key-bb_grid .imagelayer image\").length - 1)"  # images less the photo
#: Where the first page's wait goes: when each of these first appears (ms after the navigation started).
MARKS = {"front end up": "[data-testid='stApp']", "page script's title": "h1",
         "first chart": ".js-plotly-plot .main-svg"}
MARK_SCRIPT = "window.__marks = {}; const wanted = " + json.dumps(MARKS) + """;
const look = () => { for (const [name, selector] of Object.entries(wanted))
  if (!(name in window.__marks) && document.querySelector(selector)) window.__marks[name] = performance.now(); };
new MutationObserver(look).observe(document, {subtree: true, childList: true});
"""


class MemoryWatch:
    """Peak resident memory of a process and its children, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        import psutil

        self.process, self.every, self.peak = psutil.Process(pid), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                total = self.process.memory_info().rss + sum(
                    child.memory_info().rss for child in self.process.children(recursive=True))
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class CpuSplit:
    """CPU seconds of the dashboard server (and its children) and of the headless browser's processes since
    :meth:`start`, and the same at the moment the last learner's first page drew its chart. Sampled every
    0.5 s per process (the last value seen counts), so a renderer that exits with its context is still counted."""

    def __init__(self, server_pid: int, learners: int) -> None:
        import psutil

        self.server, self.learners, self.first_pages = psutil.Process(server_pid), learners, 0
        self.seen: dict[tuple[str, int], float] = {}
        self.at_start: dict[str, float] = {}
        self.after_first_pages: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            server = [self.server, *self.server.children(recursive=True)]
        except psutil.Error:
            server = []
        browsers = [p for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
        with self._lock:
            for kind, processes in (("server", server), ("browsers", browsers)):
                for process in processes:
                    try:
                        times = process.cpu_times()
                    except psutil.Error:
                        continue
                    self.seen[(kind, process.pid)] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def _totals(self) -> dict[str, float]:
        self._sample()
        with self._lock:
            return {kind: sum(v for (k, _pid), v in self.seen.items() if k == kind) for kind in ("server", "browsers")}

    def start(self) -> None:
        self.at_start = self._totals()
        self._thread.start()

    def first_page_done(self) -> None:
        self.first_pages += 1
        if self.first_pages == self.learners:
            self.after_first_pages = self.since_start()

    def since_start(self) -> dict[str, float]:
        now = self._totals()
        return {k: now[k] - self.at_start.get(k, 0.0) for k in now}

    def stop(self) -> dict[str, float]:
        """The totals since :meth:`start`; sampling ends."""
        totals = self.since_start()
        self._stop.set()
        return totals


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


async def wait_idle(page, timeout_ms: float) -> None:
    """The script finished its run and stays finished (two checks 300 ms apart)."""
    deadline = time.perf_counter() + timeout_ms / 1000
    await page.wait_for_timeout(150)
    while True:
        left = max(1.0, (deadline - time.perf_counter()) * 1000)
        await page.wait_for_selector(IDLE, state="attached", timeout=left)
        await page.wait_for_timeout(300)
        if await page.locator(IDLE).count() == 1 or time.perf_counter() > deadline:
            return


async def first_page_marks(page) -> dict[str, float]:
    """Seconds after navigation start: HTML and its scripts parsed, then each of :data:`MARKS` first seen."""
    marks = await page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const scripts = performance.getEntriesByType('resource').filter(r => r.initiatorType === 'script');
      return {"HTML and scripts parsed": nav ? nav.domContentLoadedEventEnd : null,
              "scripts fetched (last)": scripts.length ? Math.max(...scripts.map(r => r.responseEnd)) : null,
              ...window.__marks};
    }""")
    return {name: value / 1000 for name, value in marks.items() if value is not None}


async def learner(browser, url: str, index: int, epochs: int, step_ms: float, cpu: CpuSplit) -> dict:
    """One learner's walk; every timing in seconds, and what it saw."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(MARK_SCRIPT)
    page = await context.new_page()
    page.set_default_timeout(step_ms)
    record: dict = {"learner": index, "epochs": epochs, "steps": {}, "exceptions": 0, "failed": None}

    async def timed(name: str, action, until: str) -> None:
        started = time.perf_counter()
        await action()
        await page.wait_for_function(f"() => {until}", polling=50, timeout=step_ms)
        record["steps"][name] = time.perf_counter() - started
        await wait_idle(page, step_ms)
        record["exceptions"] += await page.locator(EXCEPTION).count()

    try:
        await timed("train page first chart",
                    lambda: page.goto(f"{url}/train?epochs={epochs}&target=1.0", wait_until="domcontentloaded"),
                    "document.querySelector('.js-plotly-plot .main-svg') !== null")
        record["first page"] = await first_page_marks(page)
        cpu.first_page_done()
        await timed("training done", lambda: page.locator(".st-key-tr_train button").click(),
                    "document.querySelector(\".st-key-tr_curves .main-svg\") !== null")
        shown = await page.locator("[data-testid='stMetric']", has_text="Test accuracy").locator(
            "[data-testid='stMetricValue']").inner_text()
        record["accuracy shown on Train"] = shown

        await timed("black box first chart (Look inside)", lambda: page.locator(".st-key-tr_look_inside button").click(),
                    "document.querySelector(\".st-key-bb_maps_conv1 .main-svg\") !== null && "
                    f"{GRID_MAPS} >= 2")
        box = page.locator(".st-key-model_choice [role='combobox']").first
        await box.click()
        options = await page.locator("[role='option']").all_inner_texts()
        record["trained models in picker"] = [o for o in options if o.startswith("Your ")]
        await page.keyboard.press("Escape")
        captions = " ".join(await page.locator("[data-testid='stCaptionContainer']").all_inner_texts())
        found = re.search(r"(\d+) of (\d+) test images right", captions)
        record["right on black box"] = found.group(0) if found else None
        for method in ADDED_METHODS:
            before = await page.evaluate(f"() => {GRID_MAPS}")

            async def add(method: str = method) -> None:
                await page.locator(".st-key-bb_methods input[role='combobox']").first.click()
                await page.get_by_role("option", name=method, exact=True).first.click()
                await page.keyboard.press("Escape")

            await timed(f"switch method: + {method.split(' (')[0]}", add, f"{GRID_MAPS} > {before}")
    except Exception as exc:  # a failure of this learner: recorded, the others go on
        record["failed"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        await context.close()
    record["own numbers only"] = own_numbers_only(record)
    return record


def own_numbers_only(record: dict) -> bool:
    """Its picker lists one trained model, with the accuracy its Train page showed, and the same share right."""
    models = record.get("trained models in picker") or []
    shown = record.get("accuracy shown on Train")
    right = record.get("right on black box")
    if len(models) != 1 or not shown or shown not in models[0] or not right:
        return False
    done, total = (int(n) for n in re.findall(r"\d+", right)[:2])
    return f"{done / total:.1%}" == shown


async def classroom(url: str, learners: int, step_ms: float, warm: bool, cpu: CpuSplit) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            if warm:
                page = await browser.new_page()
                await page.goto(url, wait_until="domcontentloaded")
                await page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached", timeout=step_ms)
                # the bundled model loads in the background after the first page; its page waits until it has
                await page.goto(f"{url}/black_box", wait_until="domcontentloaded")
                await page.locator(".js-plotly-plot .main-svg").first.wait_for(state="attached", timeout=step_ms)
                await page.close()
            cpu.start()
            return list(await asyncio.gather(*(learner(browser, url, i, 4 + i, step_ms, cpu) for i in range(learners))))
        finally:
            await browser.close()


def summarize(records: list[dict], log: str, peak: int, seconds: float, args: argparse.Namespace) -> dict:
    """The figures: pooled and per-step times to chart, failures, exceptions, memory, isolation."""
    chart_steps = [k for r in records for k in r["steps"] if k != "training done"]
    pooled = [r["steps"][k] for r in records for k in r["steps"] if k != "training done"]
    per_step = {}
    for name in dict.fromkeys(chart_steps + ["training done"]):
        values = [r["steps"][name] for r in records if name in r["steps"]]
        per_step[name] = {"median_s": statistics.median(values), "p95_s": percentile(values, 0.95), "n": len(values)}
    first_page = {}
    for name in dict.fromkeys(k for r in records for k in r.get("first page", {})):
        values = [r["first page"][name] for r in records if name in r.get("first page", {})]
        first_page[name] = {"median_s": statistics.median(values), "p95_s": percentile(values, 0.95), "n": len(values)}
    tracebacks = log.count("Traceback (most recent call last)")
    return {
        "learners": len(records),
        "time_to_chart_median_s": statistics.median(pooled) if pooled else float("nan"),
        "time_to_chart_p95_s": percentile(pooled, 0.95),
        "per_step": per_step,
        "first_page_marks": first_page,
        "failures": sum(1 for r in records if r["failed"]),
        "exceptions_on_pages": sum(r["exceptions"] for r in records),
        "tracebacks_in_server_log": tracebacks,
        "server_peak_rss_mb": peak / 2**20,
        "each_saw_only_its_own": all(r["own numbers only"] for r in records),
        "wall_s": seconds,
        "threads": args.threads,
        "warmed": not args.cold,
        "cpu_cores": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "records": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=8, help="browser sessions at once (default 8)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run (default 900)")
    parser.add_argument("--step-timeout", type=float, default=300, help="seconds one step may take (default 300)")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the server (default 1)")
    parser.add_argument("--cold", action="store_true", help="no warm-up visit before the learners arrive")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with DashboardServer(env={"OMP_NUM_THREADS": str(args.threads)}) as server:
        assert server.process is not None
        with MemoryWatch(server.process.pid) as memory:
            cpu = CpuSplit(server.process.pid, args.learners)
            started = time.perf_counter()
            records = asyncio.run(asyncio.wait_for(
                classroom(server.url, args.learners, args.step_timeout * 1000, not args.cold, cpu), timeout=args.timeout))
            seconds = time.perf_counter() - started
            cpu_total = cpu.stop()
        log = server.log.read_text(errors="replace")
    result = summarize(records, log, memory.peak, seconds, args)
    result["load_average_before"] = load_before
    result["cpu_seconds"] = {"first_pages": cpu.after_first_pages, "whole_run": cpu_total}
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        print()
        return
    print(f"{result['learners']} learners at once, {seconds:.0f} s in all (load average before "
          f"{load_before[0]:.1f}, after {result['load_average_after'][0]:.1f} on {os.cpu_count()} cores)")
    print(f"time to first chart: median {result['time_to_chart_median_s']:.1f} s, p95 "
          f"{result['time_to_chart_p95_s']:.1f} s (target ≤ 30 s)")
    for name, figures in result["per_step"].items():
        print(f"  {name:42s} median {figures['median_s']:6.1f} s  p95 {figures['p95_s']:6.1f} s  (n={figures['n']})")
    first, whole = result["cpu_seconds"]["first_pages"], result["cpu_seconds"]["whole_run"]
    if first:
        print(f"  CPU seconds until every first page drew: server {first['server']:.1f}, browsers {first['browsers']:.1f} "
              f"(in a classroom the browsers run on the learners' machines); whole run: server "
              f"{whole['server']:.1f}, browsers {whole['browsers']:.1f}")
    print("  where the Train page's first wait goes (seconds after navigation start):")
    for name, figures in result["first_page_marks"].items():
        print(f"    {name:40s} median {figures['median_s']:6.1f} s  p95 {figures['p95_s']:6.1f} s  (n={figures['n']})")
    print(f"failures {result['failures']}, exceptions on pages {result['exceptions_on_pages']}, tracebacks in the "
          f"server log {result['tracebacks_in_server_log']}; server peak memory {result['server_peak_rss_mb']:.0f} MB; "
          f"each learner saw only its own model and numbers: {result['each_saw_only_its_own']}")
    for record in records:
        if record["failed"]:
            print(f"  learner {record['learner']} failed: {record['failed']}")


if __name__ == "__main__":
    main()
