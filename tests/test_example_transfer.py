"""The transfer examples – the CLI script and the small-data notebook – run and report real results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_transfer_curve_script_saves_the_figure(tmp_path):
    html = tmp_path / "curve.html"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "EXPLAINER_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "transfer_curve.py"), "--dataset", "digits", "--shots", "1,5", "--seeds", "2",
         "--strategies", "linear_probe,pixels,small_cnn", "--steps", "20", "--html", str(html),
         "--out", str(tmp_path / "runs.jsonl")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "[12/12]" in done.stdout and "too few to name a winner: run ≥ 5 seeds" in done.stdout  # 2 seeds
    assert html.is_file() and "plotly" in html.read_text()[:5000].lower()
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 1 + 12

    bad = subprocess.run(
        [sys.executable, str(EXAMPLES / "transfer_curve.py"), "--shots", "1,five"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert bad.returncode == 2 and "--shots must be comma-separated whole numbers" in bad.stderr


@pytest.mark.slow
def test_small_data_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("EXPLAINER_CACHE", str(tmp_path / "cache"))
    notebook = nbformat.read(EXAMPLES / "small_data.ipynb", as_version=4)
    settings = next(cell for cell in notebook.cells if cell.source.startswith("SHOTS = (1, 5)"))
    settings.source = settings.source.replace("SHOTS = (1, 5)", "SHOTS = (1,)", 1)  # 1 shot: no validation search
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        errors = [out for out in cell.outputs if out.output_type == "error"]
        assert not errors, errors
    text = "\n".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    assert f"python: {sys.executable}" in text
    assert "Raw pixels beat the pretrained linear probe at every shot level" in text  # digits
    assert "the second read back 8 and computed 0" in text
    figures = [out for cell in code for out in cell.outputs if "application/vnd.plotly.v1+json" in out.get("data", {})]
    assert len(figures) == 2
