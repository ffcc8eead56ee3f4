"""Attribution layer: the method registry, attribution runners, the ``explain()`` entry and cost estimates.

(The package is ``attribution``, not ``explain``, so that the function ``explainer.explain`` shadows no
module; ``from explainer.attribution import explain, METHODS, ...`` keeps working from 0.1.)

Modules, one job each: :mod:`~explainer.attribution.registry` (``Param``, ``MethodSpec``, the runner
contract, ``register_method``), :mod:`~explainer.attribution.captum_methods` and
:mod:`~explainer.attribution.cam` (the built-in methods), :mod:`~explainer.attribution.methods` (more
method families; every module there registers itself), :mod:`~explainer.attribution.memory` (passes
that fit a memory budget), :mod:`~explainer.attribution.private_copy`, :mod:`~explainer.attribution.estimate`
(cost estimates and the time budget) and :mod:`~explainer.attribution.explanation` (``explain()``).
"""

from explainer.attribution import methods as _methods  # noqa: F401  (registers every method family)
from explainer.attribution.captum_methods import BASELINES, occlusion_window
from explainer.attribution.estimate import CostEstimate, check_budget, estimate_cost
from explainer.attribution.explanation import Explanation, explain
from explainer.attribution.registry import (
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
    "BASELINES",
    "METHODS",
    "occlusion_window",
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
