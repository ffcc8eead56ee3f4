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


#: Run first in the kernel: record every DeprecationWarning that explainer raises (from inside the package, or
#: attributed by ``stacklevel`` to a notebook cell) – an example must use the current API only.
RECORD_DEPRECATIONS = """
import os as _os, warnings as _warnings
import explainer as _explainer
_PACKAGE = _os.path.dirname(_explainer.__file__)
_DEPRECATED = []
def _record(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DeprecationWarning) and (filename.startswith(_PACKAGE) or "ipykernel" in filename):
        _DEPRECATED.append(f"{filename}:{lineno}: {message}")
_warnings.showwarning = _record
_warnings.simplefilter("always", DeprecationWarning)
"""
CHECK_DEPRECATIONS = "assert not _DEPRECATED, 'the example uses deprecated explainer API: ' + ' | '.join(_DEPRECATED)"


def execute_notebook(name: str, *, require_output: bool = True) -> NotebookRun:
    """Execute ``examples/<name>`` in the test's Python (kernel ``python3``); fail on any cell error and on any
    DeprecationWarning from explainer."""
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    cells = list(notebook.cells)
    notebook.cells = [nbformat.v4.new_code_cell(RECORD_DEPRECATIONS), *cells,
                      nbformat.v4.new_code_cell(CHECK_DEPRECATIONS)]
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()
    check = notebook.cells[-1]
    assert not [out for out in check.outputs if out.output_type == "error"], check.outputs
    code = [cell for cell in notebook.cells[1:-1] if cell.cell_type == "code"]
    for cell in code:
        if require_output:
            assert cell.outputs, f"cell produced no output:\n{cell.source}"
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
    text = "\n".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    figures = [out for cell in code for out in cell.outputs if PLOTLY_MIME in out.get("data", {})]
    return NotebookRun(code, text, figures)
