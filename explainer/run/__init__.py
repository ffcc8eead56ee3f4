"""The runner for long jobs: independent units → rows → one resumable results file; local or Ray backend."""

from explainer.run.results_file import ResultsWriter, finished_keys, read_results, unit_key
from explainer.run.runner import BACKENDS, Progress, StudyProgress, run_units

__all__ = ["BACKENDS", "Progress", "ResultsWriter", "StudyProgress", "finished_keys", "read_results", "run_units",
           "unit_key"]
