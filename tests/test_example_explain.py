"""The explain-and-check example notebook runs top to bottom and shows its results."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow  # ~30 s on an idle 2-core CPU: kernel start, two faithfulness checks, a tiny CNN
def test_explain_and_check_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(EXAMPLES / "explain_and_check.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs, f"cell produced no output:\n{cell.source}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
    text = "\n".join(
        out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream"
    )
    assert "Egyptian cat" in text
    assert "Deleting the most relevant pixels first" in text and "Model randomization" in text
    assert text.count("of |attribution| inside the square") == 4
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", text).group(1))
    assert accuracy > 90, text
    share, area = map(float, re.search(
        r"integrated_gradients +([\d.]+)% of \|attribution\| inside the square \(the square covers ([\d.]+)%", text
    ).groups())
    assert share > 3 * area, text  # the tiny CNN's IG map concentrates on the decisive square
    figures = [out for cell in code for out in cell.outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    assert len(figures) == 5  # methods grid, two curve plots, randomization cascade, agreement
