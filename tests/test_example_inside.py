"""The inside-the-network example notebook runs top to bottom and shows its results."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_inside_the_network_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(EXAMPLES / "inside_the_network.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs, f"cell produced no output:\n{cell.source}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
    text = "\n".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    assert "4,652,008 parameters" in text and "sum of the rows = 4,652,008" in text
    assert "Egyptian cat" in text and "matches: True" in text
    cam, random = (float(v) for v in re.search(r"CAM channels ([-\d.]+), random channels ([-\d.]+)", text).groups())
    assert cam > random + 0.1
    features, pixels = (float(v) for v in re.search(r"t-SNE, 2-D k-NN accuracy: CNN features ([\d.]+)%, raw pixels "
                                                    r"([\d.]+)%", text).groups())
    assert features > pixels + 1.5
    figures = [out for cell in code for out in cell.outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    assert len(figures) == 11
