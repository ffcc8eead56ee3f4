"""Every code snippet a dashboard page shows the learner runs as shown.

Each page is opened with AppTest in its first-load state; every ``st.code`` block in Python is
executed in a fresh namespace (a snippet that names a call that does not exist fails here).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # opens every page once (~50 s on 2 busy cores)
DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
PAGES = sorted(path.stem for path in (DASHBOARDS / "views").glob("*.py"))


@pytest.fixture(scope="module")
def snippets() -> dict[str, list[str]]:
    """The Python snippets of every page, by page, as the learner sees them on first load."""
    import sys

    sys.path.insert(0, str(DASHBOARDS))
    try:
        at = AppTest.from_file(str(DASHBOARDS / "app.py"), default_timeout=180)
        at.run()
        shown: dict[str, list[str]] = {}
        for page in PAGES:
            at.switch_page(f"views/{page}.py").run()
            assert not at.exception, (page, [e.value for e in at.exception])
            shown[page] = [block.value for block in at.code if (block.language or "python") == "python"]
        return shown
    finally:
        sys.path.remove(str(DASHBOARDS))


def test_pages_show_snippets(snippets: dict[str, list[str]]) -> None:
    assert snippets["home"], "the home page shows how to get the same table in a notebook"


@pytest.mark.parametrize("page", PAGES)
def test_every_snippet_on_the_page_runs(snippets: dict[str, list[str]], page: str) -> None:
    for code in snippets[page]:
        namespace: dict = {"__name__": "__snippet__"}
        exec(compile(code, f"<{page} snippet>", "exec"), namespace)  # noqa: S102 - the point of the test
