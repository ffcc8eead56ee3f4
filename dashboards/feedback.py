"""Library errors shown on the page as a red box with their message, instead of a traceback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import streamlit as st


@contextlib.contextmanager
def shows_errors(stop: bool = True) -> Iterator[None]:
    """Show an explainer error as a red box with its message (and stop the page when ``stop``).

    ``explainer.errors`` is looked up, not imported: a page that has not imported the library
    cannot have raised one of its errors, and importing it here would cost every page torch's import.
    """
    try:
        yield
    except Exception as exc:
        errors = sys.modules.get("explainer.errors")
        if errors is None or not isinstance(exc, errors.ExplainerError):
            raise
        st.error(str(exc), icon=":material/error:")
        if stop:
            st.stop()
