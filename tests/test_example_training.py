"""The train-on-a-laptop example notebook runs top to bottom and shows a receipt and one learning step."""

from __future__ import annotations

import os
import re

from notebooks import execute_notebook


def test_train_on_a_laptop_notebook_runs(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    run = execute_notebook("train_on_a_laptop.ipynb")
    text = run.text
    receipt = re.search(
        r"([\d,]+) parameters trained to ([\d.]+)% test accuracy in ([\d.]+) s on this CPU \((\d+) threads?\): "
        r"([\d.]+) GFLOP/s = (\d+)% of this machine's measured matrix-multiply peak \(([\d.]+) GFLOP/s\)",
        text,
    )
    assert receipt, text
    parameters, accuracy, seconds, _, gflops, share, peak = receipt.groups()
    assert parameters == "38,282" and float(accuracy) >= 97.0 and float(seconds) > 0
    assert abs(float(gflops) / float(peak) * 100 - int(share)) <= 1
    assert "new weights == old weights − 0.1 × gradient for every parameter: True" in text
    assert "diverged" in text and "far too high" in text
    linear, tanh = (float(v) for v in re.findall(r"(?:linear|tanh) *: test accuracy ([\d.]+)%", text))
    assert linear < 70 <= 90 <= tanh
    assert "ablating 4 of conv2's channels" in text and "integrated gradients: (4, 1, 8, 8)" in text
    assert "deletion_morf (lower is better)" in text  # the evaluation's verdict on the trained network
    figures = run.figures
    assert len(figures) == 4  # training curves, update ratios, learning step, decision boundary
