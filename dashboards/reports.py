"""The views a learner produced, kept for the Report page and offered as HTML downloads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

if TYPE_CHECKING:
    from explainer import ReportSection

#: Session-state key holding the report sections a learner has produced so far.
REPORT_KEY = "report_sections"


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "report"


def keep_report(key: str, section: ReportSection) -> None:
    """Remember (or replace) ``section`` for the Report page, under the view's ``key``."""
    st.session_state.setdefault(REPORT_KEY, {})[key] = section


def offer_report(key: str, section: ReportSection | None = None) -> None:
    """Remember ``section`` for the Report page and offer it as a self-contained HTML download.

    With ``section=None`` the button offers whatever was last kept under ``key`` (parts of a page
    that rerun on their own call :func:`keep_report`); the HTML is built only when clicked.
    """
    from explainer import build_report

    if section is not None:
        keep_report(key, section)

    def html() -> str:
        kept = report_sections()[key]
        return build_report([kept], title=kept.title)

    title = (section or report_sections().get(key))
    st.download_button(
        "Download this view as HTML", data=html, file_name=f"{slug(title.title if title else key)}.html",
        mime="text/html", on_click="ignore", key=f"download_{key}", icon=":material/download:",
    )


def report_sections() -> dict[str, ReportSection]:
    """The sections this learner has produced in this session, by view key."""
    return st.session_state.get(REPORT_KEY, {})


def shipped(path: str) -> Path:
    """A file shipped in the repository (``results/...``), by its path from the repository root."""
    return Path(__file__).resolve().parents[1] / path
