"""The explain-and-check example notebook runs top to bottom and shows its results."""

from __future__ import annotations

import os
import re

import pytest
from notebooks import execute_notebook


@pytest.mark.slow  # ~30 s on an idle 2-core CPU: kernel start, two faithfulness checks, a tiny CNN
def test_explain_and_check_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = execute_notebook("explain_and_check.ipynb")
    text = run.text
    assert "Egyptian cat" in text
    assert "Deleting the most relevant pixels first" in text and "Model randomization" in text
    assert text.count("of |attribution| inside the square") == 4
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", text).group(1))
    assert accuracy > 90, text
    share, area = map(float, re.search(
        r"integrated_gradients +([\d.]+)% of \|attribution\| inside the square \(the square covers ([\d.]+)%", text
    ).groups())
    assert share > 3 * area, text  # the tiny CNN's IG map concentrates on the decisive square
    figures = run.figures
    assert len(figures) == 5  # methods grid, two curve plots, randomization cascade, agreement
