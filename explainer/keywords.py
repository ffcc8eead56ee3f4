"""Keyword checking: a misspelled keyword argument raises an InputError with a "did you mean" naming
the closest real one, not a bare TypeError."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from explainer.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def keyword_checker(function: Callable[..., Any], *, extra: Iterable[str] = ()) -> Callable[[Mapping[str, Any]], None]:
    """A check that the keyword arguments of a call are ``function``'s: a misspelled one (``topk``,
    ``method=`` for ``methods=``) raises an InputError naming the closest real one, not a bare TypeError."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda kwargs: None
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    allowed = set(names) | set(extra)

    def check(kwargs: Mapping[str, Any]) -> None:
        for key in kwargs:
            if key not in allowed:
                close = difflib.get_close_matches(key.replace("-", "_"), names, n=1, cutoff=0.5)
                hint = f" Did you mean {close[0]}=?" if close else ""
                raise InputError(f"{function.__name__}() has no argument {key!r}.{hint} "
                                 f"It takes: {', '.join(names)}.")

    return check


def checked_keywords(function: F) -> F:
    """Decorator: misspelled keyword arguments raise an InputError with a "did you mean" (see :func:`keyword_checker`)."""
    check = keyword_checker(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(kwargs)
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
