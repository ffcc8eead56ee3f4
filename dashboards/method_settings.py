"""The dashboard's method picker and per-method parameter widgets, generated from the registry's Param schema.

No ML here: the widgets come from ``MethodSpec.params`` (a slider for a number with a range, a
selectbox for choices, a checkbox for a bool, a number or text box otherwise; an "automatic"
checkbox for optional parameters), so a method registered with ``explainer.register_method``
shows up with its settings and no edit to any page. Pages call::

    methods = method_picker(key="bb_methods", default=["gradcam", "saliency"])
    params = {m: method_settings(m, key=f"bb_{m}") for m in methods}   # {param: value}, validated
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from explainer import METHODS, Param, get_method, list_methods


def method_label(name: str) -> str:
    """How the picker shows a method: "Title (kind)"."""
    spec = get_method(name)
    return f"{spec.title} ({spec.kind})"


def method_picker(
    label: str = "Attribution methods",
    *,
    key: str,
    default: Sequence[str] = ("gradcam", "saliency"),
    kinds: Sequence[str] | None = None,
    max_selections: int | None = 4,
    help: str | None = None,
) -> list[str]:
    """A multiselect over the registered methods (optionally only some ``kinds``); the chosen names."""
    options = list_methods(list(kinds)) if kinds is not None else list_methods()
    return list(st.multiselect(
        label, options, default=[name for name in default if name in options], key=key,
        max_selections=max_selections, format_func=method_label, help=help,
    ))


def single_method_picker(
    label: str = "Attribution method", *, key: str, default: str | None = None, kinds: Sequence[str] | None = None,
) -> str:
    """A selectbox over the registered methods; the chosen name."""
    options = list_methods(list(kinds)) if kinds is not None else list_methods()
    index = options.index(default) if default in options else 0
    return str(st.selectbox(label, options, index=index, key=key, format_func=method_label))


def method_settings(method: str, *, key: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One widget per parameter of ``method``; every parameter's chosen value, validated by its schema.

    ``defaults`` overrides the starting value of some parameters (e.g. fewer steps for a quick
    page); ``key`` prefixes the widget keys so two pages (or two methods) never share a widget.
    """
    spec = get_method(method)
    start = {**spec.defaults, **(defaults or {})}
    chosen = {param.name: param_widget(param, key=f"{key}_{param.name}", value=start[param.name], title=spec.title)
              for param in spec.params}
    return spec.resolve(chosen)


def settings_for(methods: Sequence[str], *, key: str, expander: str | None = "Method settings") -> dict[str, dict]:
    """:func:`method_settings` of several methods, inside one expander (None: no expander)."""
    def widgets() -> dict[str, dict]:
        return {method: method_settings(method, key=f"{key}_{method}") for method in methods}

    if expander is None:
        return widgets()
    with st.expander(expander):
        return widgets()


def param_widget(param: Param, *, key: str, value: Any = None, title: str = "") -> Any:
    """The widget that fits ``param``'s schema, starting at ``value``; the value the learner chose."""
    label = f"{title}: {param.name}" if title else param.name
    help_text = param.help or None
    if param.optional:
        automatic = st.checkbox(f"{label}: automatic", value=value is None, key=f"{key}_auto",
                                help=f"let the method choose ({param.help})" if param.help else None)
        if automatic:
            return None
    if param.choices is not None:
        options = list(param.choices)
        index = options.index(value) if value in options else 0
        return st.selectbox(label, options, index=index, key=key, help=help_text)
    if param.type is bool:
        return st.checkbox(label, value=bool(value), key=key, help=help_text)
    if param.type is str:
        return st.text_input(label, value="" if value is None else str(value), key=key, help=help_text)
    return _number_widget(param, label=label, key=key, value=value, help_text=help_text)


def _slider_range(param: Param) -> tuple[float, float, float]:
    """(low, high, step) of the slider: the Param's ``slider`` inside its valid range, else low–high."""
    if param.slider is not None:
        low, high, step = (float(v) for v in param.slider)
    else:
        low, high = float(param.low or 0.0), float(param.high or 0.0)
        step = 1.0 if param.type is int else ((high - low) / 100 or 0.01)
    low = max(low, param.low) if param.low is not None else low
    high = min(high, param.high) if param.high is not None else high
    return low, max(low, high), step


def _number_widget(param: Param, *, label: str, key: str, value: Any, help_text: str | None) -> Any:
    """A slider for a bounded number (its ``slider`` range, else low–high), a number box otherwise."""
    cast = int if param.type is int else float
    if param.bounded:
        low, high, step = _slider_range(param)
        start = min(max(float(value if value is not None else low), low), high)
        return st.slider(label, cast(low), cast(high), cast(start), step=cast(step), key=key, help=help_text)
    start = value if value is not None else (param.low if param.low is not None else 0)
    return st.number_input(
        label, value=cast(start), min_value=None if param.low is None else cast(param.low),
        max_value=None if param.high is None else cast(param.high), step=cast(1) if cast is int else None,
        key=key, help=help_text,
    )


__all__ = ["METHODS", "method_label", "method_picker", "method_settings", "param_widget", "settings_for",
           "single_method_picker"]
