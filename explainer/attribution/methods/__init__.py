"""The built-in attribution methods: one module per family, each registers its methods when imported.

:data:`MODULES` lists every family in registration order (the order of :func:`explainer.list_methods`,
the CLI's help and the dashboard); this package imports them all, and ``explainer.attribution``
imports this package, so the registry holds every built-in method whatever module a user imports
first. A new family is ``explainer/attribution/methods/<family>.py`` with ``register_method(MethodSpec(...))``
calls (see :mod:`explainer.attribution.registry`) and its name added to :data:`MODULES`
(``tests/test_registry.py`` checks that every module here is listed). A family that needs an optional
dependency imports it inside its runner, so a missing package fails only when that method runs.
Modules starting with ``_`` hold shared helpers and register nothing.
"""

from __future__ import annotations

import importlib

#: Every module of built-in methods, in registration order.
MODULES = ("captum", "gradcam", "cam_family", "lrp", "rise", "rollout", "superpixels")

for _module in MODULES:
    importlib.import_module(f"{__name__}.{_module}")
