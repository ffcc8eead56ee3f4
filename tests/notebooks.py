"""Run an example notebook with nbclient and collect what it printed and drew."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@dataclass
class NotebookRun:
    """The executed notebook's code cells, its printed text and its plotly figures."""

    code_cells: list
    text: str
    figures: list


def execute_notebook(name: str, *, require_output: bool = True) -> NotebookRun:
    """Execute ``examples/<name>`` in the test's Python (kernel ``python3``); fail on any cell error."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        if require_output:
            assert cell.outputs, f"cell produced no output:\n{cell.source}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
    text = "\n".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    figures = [out for cell in code for out in cell.outputs if PLOTLY_MIME in out.get("data", {})]
    return NotebookRun(code, text, figures)
