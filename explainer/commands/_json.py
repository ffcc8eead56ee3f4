"""``--json`` output: strictly valid JSON on stdout (non-finite numbers as null, with the reason)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np

from explainer.jsonable import json_ready


def print_json(payload: Any) -> None:
    """Write ``payload`` as indented, strictly valid JSON to stdout.

    JSON has no NaN or Infinity: a non-finite number becomes ``null`` and the object holding
    it gains ``"null_reasons": {"key": "not finite (nan)"}``, so a reader knows why it is empty.
    numpy/torch values, paths and dataclasses are converted by ``explainer.jsonable.json_ready``.
    """
    text = json.dumps(json_ready(_explain_nulls(payload)), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _explain_nulls(obj: Any) -> Any:
    """Replace non-finite numbers by None, recording why in the enclosing dict's ``null_reasons``."""
    def reason(value: Any) -> str | None:
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            return f"not finite ({float(value)})"
        if isinstance(value, (list, tuple)) and any(reason(item) for item in value):
            return "holds non-finite values (null)"
        return None

    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)) and getattr(obj, "ndim", None):
        obj = obj.tolist()  # numpy arrays and tensors
    if isinstance(obj, dict):
        cleaned = {key: _explain_nulls(value) for key, value in obj.items()}
        reasons = {str(key): why for key, value in obj.items() if (why := reason(_plain(value)))}
        if reasons:
            cleaned["null_reasons"] = {**cleaned.get("null_reasons", {}), **reasons}
        return cleaned
    if isinstance(obj, (list, tuple)):
        return [_explain_nulls(item) for item in obj]
    if reason(obj):
        return None
    return obj


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value
