"""Page settings in the URL (``?name=value``), so that a copied link reopens the same experiment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")


def url_value(name: str, default: T, cast: Callable[[str], T] | None = None) -> T:
    """A setting from the page URL (``?name=value``), or ``default`` when it is missing or unreadable."""
    raw = st.query_params.get(name)
    if raw is None:
        return default
    try:
        if cast is not None:
            return cast(raw)
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")  # type: ignore[return-value]
        if isinstance(default, (tuple, list)):
            return type(default)(p for p in raw.split(",") if p)
        return type(default)(raw)  # type: ignore[call-arg]
    except (TypeError, ValueError):
        return default


def _same_number(option: Any, text: str | None) -> bool:
    try:
        return text is not None and not isinstance(option, str) and float(option) == float(text)
    except (TypeError, ValueError):
        return False


def url_choice(name: str, options: list, default: Any) -> int:
    """The index of the URL's value among ``options`` (the default's index when absent or unknown)."""
    value = st.query_params.get(name)
    matches = [i for i, option in enumerate(options) if str(option) == value or _same_number(option, value)]
    return matches[0] if matches else options.index(default)


def url_option(name: str, options: list[T], default: T) -> T:
    """The URL's value when it is one of ``options`` (compared as numbers or text), else ``default``."""
    return options[url_choice(name, options, default)] if name in st.query_params else default


def write_url(values: dict[str, Any]) -> None:
    """Put the page's settings in the URL so that a copied link reopens the same experiment."""
    text = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in values.items()}
    if dict(st.query_params) != text:
        st.query_params.from_dict(text)
