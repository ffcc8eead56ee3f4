"""Shared fixtures. Tests run offline: a hub lookup must fail fast, never retry."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-unused"))

import pytest
import torch
from ray_cluster import private_ray_cluster  # noqa: F401 - the session's Ray cluster fixture

import explainer

torch.manual_seed(0)


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread (steady timings beside other jobs), then restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def bundled_classifier() -> explainer.Classifier:
    """The bundled ImageNet EfficientNet-Lite0 on the CPU (frozen; do not modify it in a test)."""
    return explainer.load_model(device="cpu")


@pytest.fixture(scope="session")
def photos() -> dict:
    """scikit-image sample photos by name (cat, coffee, rocket, astronaut, camera, china)."""
    return explainer.sample_images()
