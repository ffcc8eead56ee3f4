"""Exceptions raised by explainer; every message names the problem and the fix."""

from __future__ import annotations


class ExplainerError(Exception):
    """Base class for all errors explainer raises on purpose."""


class InputError(ExplainerError, ValueError):
    """The user's input (image, tensor, target, layer name, option) cannot be used."""


class ModelLoadError(ExplainerError, RuntimeError):
    """A model or its weights cannot be loaded (offline, unknown name, unsafe file)."""


class DatasetError(ExplainerError, RuntimeError):
    """A dataset cannot be loaded (unknown name, files missing offline, bad folder)."""


def describe_exception(exc: BaseException, limit: int = 240) -> str:
    """``"TypeName: first line of the message"`` (at most ``limit`` characters of it) – a library's error in one
    line, for a message of ours that says what to do."""
    text = str(exc).strip().splitlines()[0][:limit] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
