"""Explain layer: the method registry, attribution runners, the ``explain()`` entry and cost estimates.

Modules, one job each: :mod:`~explainer.explain.registry` (``Param``, ``MethodSpec``, the runner
contract, ``register_method``), :mod:`~explainer.explain.captum_methods` and
:mod:`~explainer.explain.cam` (the built-in methods), :mod:`~explainer.explain.methods` (more
method families; every module there registers itself), :mod:`~explainer.explain.memory` (passes
that fit a memory budget), :mod:`~explainer.explain.private_copy`, :mod:`~explainer.explain.estimate`
(cost estimates and the time budget) and :mod:`~explainer.explain.attribution` (``explain()``).
"""

from explainer.explain import methods as _methods  # noqa: F401  (registers every method family)
from explainer.explain.attribution import Explanation, explain
from explainer.explain.estimate import CostEstimate, check_budget, estimate_cost
from explainer.explain.registry import (
    METHODS,
    Job,
    MethodSpec,
    Output,
    Param,
    get_method,
    list_methods,
    register_method,
    unregister_method,
)

__all__ = [
    "METHODS",
    "CostEstimate",
    "Explanation",
    "Job",
    "MethodSpec",
    "Output",
    "Param",
    "check_budget",
    "estimate_cost",
    "explain",
    "get_method",
    "list_methods",
    "register_method",
    "unregister_method",
]
