"""Transfer vs scratch on few labelled examples.

Modules, one job each: ``strategies`` (the registry of named strategies), ``task`` (a dataset, a
backbone and the shared recipe), ``learners`` (the heads and networks, trained through ``fit``),
``experiment`` (units → :func:`explainer.run.run_units`, locally or on Ray), ``results`` (the table,
its summary, reading a results file, the time a new study should take from its measured runs), ``verdict``
(plain words and the headline table from seed-paired intervals) and ``feature_cache`` (frozen features,
computed once).
"""

from explainer.transfer.experiment import DEFAULT_SHOTS, compare_transfer, few_shot_sample, resume_results
from explainer.transfer.results import TransferEstimate, TransferResults, open_results
from explainer.transfer.strategies import STRATEGIES, Strategy, get_strategy, register_strategy
from explainer.transfer.task import DEFAULT_LR

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_SHOTS",
    "STRATEGIES",
    "Strategy",
    "TransferEstimate",
    "TransferResults",
    "compare_transfer",
    "few_shot_sample",
    "get_strategy",
    "open_results",
    "register_strategy",
    "resume_results",
]
