"""Attribution layer: the method registry, attribution runners, the ``explain()`` entry and cost estimates.

(The package is ``attribution``, not ``explain``, so that the function ``explainer.explain`` shadows no
module; ``from explainer.attribution import explain, METHODS, ...`` keeps working from 0.1.)

Modules, one job each: :mod:`~explainer.attribution.registry` (``Param``, ``MethodSpec``, the runner
contract, ``register_method``), :mod:`~explainer.attribution.methods` (every built-in method, one module
per family; importing this package registers them all), :mod:`~explainer.attribution.memory` (passes
that fit a memory budget), :mod:`~explainer.attribution.private_copy`, :mod:`~explainer.attribution.estimate`
(cost estimates and the time budget) and :mod:`~explainer.attribution.explanation` (``explain()``).
"""

from explainer.attribution import methods as _methods  # noqa: F401  (registers every built-in method)
from explainer.attribution.estimate import CostEstimate, check_budget, estimate_cost
from explainer.attribution.explanation import Explanation, explain
from explainer.attribution.methods.captum import occlusion_window
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
from explainer.baselines import BASELINES

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
