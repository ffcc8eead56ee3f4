"""explainer.report: self-contained HTML with figures, numbers, versions and hardware."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import plotly.graph_objects as go
import plotly.offline
import pytest
import torch

from explainer import InputError
from explainer.report import NO_GPU_TEXT, ReportSection, build_report, environment, save_report


def _figure() -> go.Figure:
    return go.Figure(go.Heatmap(z=np.arange(12, dtype=np.float32).reshape(3, 4), name="attribution"))


def test_report_is_self_contained_and_carries_numbers_and_environment() -> None:
    section = ReportSection(
        "Grad-CAM on <cat>", text="First paragraph.\n\nSecond & last.", figures=[_figure(), _figure()],
        numbers={"deletion AUC": 0.123456, "steps": 25, "device": "cpu"},
        tables={"per method": [{"method": "gradcam", "auc": 0.25}, {"method": "saliency", "auc": 0.5}]},
    )
    env = {"versions": {"explainer": "9.9", "torch": "1.2"}, "hardware": {"cpu": "Test CPU"}}
    page = build_report([section], title="Why a cat?", env=env, created=dt.datetime(2024, 1, 2, 3, 4, 5))

    assert page.startswith("<!DOCTYPE html>")
    assert plotly.offline.get_plotlyjs()[:2000] in page  # plotly.js inlined, not fetched from a CDN
    assert "<script src=" not in page and "<link " not in page  # nothing fetched when opened
    assert page.count("Plotly.newPlot(") == 2
    assert "Grad-CAM on &lt;cat&gt;" in page and "<cat>" not in page  # titles are escaped
    assert "<p>Second &amp; last.</p>" in page
    assert "<td>deletion AUC</td><td>0.1235</td>" in page
    assert "<td>saliency</td><td>0.5</td>" in page
    assert "<td>cpu</td><td>Test CPU</td>" in page and "<td>torch</td><td>1.2</td>" in page
    assert "2024-01-02T03:04:05" in page and "explainer 9.9" in page


def test_environment_names_versions_and_hardware() -> None:
    env = environment()
    assert re.fullmatch(r"\d+\.\d+.*", env["versions"]["torch"])
    assert env["versions"]["explainer"] != "not installed"
    assert int(env["hardware"]["cpu cores"]) >= 1
    gpu = env["hardware"]["gpu"]
    if torch.cuda.is_available():  # one "name (memory GiB)" entry per device
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        assert gpu.count(" GiB)") == len(names) and all(name in gpu for name in names)
        assert NO_GPU_TEXT not in gpu
    else:
        assert gpu == NO_GPU_TEXT


def test_save_report_writes_html(tmp_path) -> None:
    path = save_report(tmp_path / "r.html", [ReportSection("One", numbers={"x": 1.5})])
    text = path.read_text(encoding="utf-8")
    assert "<td>x</td><td>1.5</td>" in text and "Plotly" in text


def test_bad_report_input_is_explained(tmp_path) -> None:
    with pytest.raises(InputError, match="at least one section"):
        build_report([])
    with pytest.raises(InputError, match="non-empty title"):
        ReportSection("  ")
    with pytest.raises(InputError, match="plotly go.Figure"):
        ReportSection("x", figures=[np.zeros(3)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="ending in .html"):
        save_report(tmp_path / "r.pdf", [ReportSection("x")])
