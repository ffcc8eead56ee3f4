"""The runner for long jobs: independent units → rows → one resumable results file; local or Ray backend."""
