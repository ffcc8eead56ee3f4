"""Method families beyond the built-in Captum and CAM ones: one module per family, each registers itself.

Every module in this folder is imported (in name order) when ``explainer.attribution`` is imported,
so a new family needs no edit anywhere else: write ``explainer/attribution/methods/<family>.py`` with
``register_method(MethodSpec(...))`` calls (see :mod:`explainer.attribution.registry`). A family that
needs an optional dependency imports it inside its runner, so a missing package fails only when
that method runs.
"""

from __future__ import annotations

import importlib
import pkgutil

from explainer.attribution import explanation as _explanation  # noqa: F401  (built-ins register first)

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
