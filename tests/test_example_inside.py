"""The inside-the-network example notebook runs top to bottom and shows its results."""

from __future__ import annotations

import os
import re

from notebooks import execute_notebook


def test_inside_the_network_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = execute_notebook("inside_the_network.ipynb")
    text = run.text
    assert "4,652,008 parameters" in text and "sum of the rows = 4,652,008" in text
    assert "Egyptian cat" in text and "matches: True" in text
    cam, random = (float(v) for v in re.search(r"CAM channels ([-\d.]+), random channels ([-\d.]+)", text).groups())
    assert cam > random + 0.1
    features, pixels = (float(v) for v in re.search(r"t-SNE, 2-D k-NN accuracy: CNN features ([\d.]+)%, raw pixels "
                                                    r"([\d.]+)%", text).groups())
    assert features > pixels + 1.5
    figures = run.figures
    assert len(figures) == 11
