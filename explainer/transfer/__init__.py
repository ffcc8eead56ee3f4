"""Transfer vs scratch on few labelled examples: strategies, the experiment, results files, verdicts."""

from explainer.transfer.experiment import (
    DEFAULT_LR,
    DEFAULT_SHOTS,
    STRATEGIES,
    TransferResults,
    compare_transfer,
    open_results,
)

__all__ = ["DEFAULT_LR", "DEFAULT_SHOTS", "STRATEGIES", "TransferResults", "compare_transfer", "open_results"]
