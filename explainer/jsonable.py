"""JSON-ready results: :func:`json_ready` (dataclasses, numpy and torch values → JSON types, NaN/inf →
None) and :class:`JsonResult`, the mixin that gives result dataclasses their ``to_dict()``."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


def json_ready(obj: Any, *, exclude: Iterable[str] = ()) -> Any:
    """``obj`` as JSON types: dataclasses and mappings → dicts, sequences/arrays/tensors → lists, numpy and
    torch scalars → Python numbers, NaN/inf → None, paths/devices/dtypes/enums → strings, a DataFrame → a
    list of row dicts, an ``nn.Module`` → its class name. ``exclude`` names top-level fields to leave out.
    """
    skip = set(exclude)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: json_ready(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in skip}
    if isinstance(obj, Mapping):
        return {str(key): json_ready(value) for key, value in obj.items() if key not in skip}
    return _json_value(obj)


def _json_value(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, torch.Tensor):
        return _json_value(obj.detach().cpu().tolist() if obj.ndim else obj.item())
    if isinstance(obj, np.ndarray):
        return _json_value(obj.tolist())
    if isinstance(obj, enum.Enum):
        return json_ready(obj.value)
    if isinstance(obj, (PurePath, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, nn.Module):
        return type(obj).__name__
    if dataclasses.is_dataclass(obj) or isinstance(obj, Mapping):
        return json_ready(obj)
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a pandas DataFrame
        return [json_ready(row) for row in obj.to_dict("records")]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json_value(item) for item in obj]
    if isinstance(obj, complex):
        return [_json_value(obj.real), _json_value(obj.imag)]
    return str(obj)


class JsonResult:
    """Mixin for result dataclasses: :meth:`to_dict` gives JSON-ready data (via :func:`json_ready`).

    Fields named in ``_not_in_dict`` (images, maps, models – large or not data) are left out.
    """

    _not_in_dict: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON types (NaN/inf → None), without the fields in ``_not_in_dict``."""
        data = json_ready(self, exclude=self._not_in_dict)
        for name in dir(type(self)):
            if isinstance(getattr(type(self), name, None), _Headline):
                data[name] = json_ready(getattr(self, name))
        return data


class _Headline(property):
    """A property that :meth:`JsonResult.to_dict` includes (derived headline numbers)."""


def headline(function: Callable[[Any], Any]) -> property:
    """Decorator: a read-only property whose value :meth:`JsonResult.to_dict` also reports."""
    return _Headline(function, doc=function.__doc__)
