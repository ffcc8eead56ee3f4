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
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one torch thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # subprocesses (CLI, notebooks, dashboards) too
    torch.set_num_threads(1)


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
def known_answer_cnn() -> tuple[explainer.Classifier, explainer.Dataset]:
    """A small CNN trained (seeded, ~5 s) on ``known_answer`` (the class is the quadrant of a bright square)
    and that dataset; shared by the mechanism tests – do not modify the model in a test (put it back)."""
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    data = explainer.load_dataset("known_answer", n_train=600, n_test=64, seed=0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 8 * 8, data.num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _epoch in range(6):
        for batch in torch.randperm(len(data.y_train)).split(32):
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
    model.eval()
    return explainer.Classifier.from_module(model, labels=data.class_names, input_size=32), data


@pytest.fixture(scope="session")
def photos() -> dict:
    """scikit-image sample photos by name (cat, coffee, rocket, astronaut, camera, china)."""
    return explainer.sample_images()


# ------------------------------------------------------------------ browser tests (Chromium)
#: Where the browser tests expect Debian's Chromium (`tools/ensure_chromium.sh` installs it when it may).
CHROMIUM = os.environ.get("EXPLAINER_CHROMIUM", "/usr/bin/chromium")  # the override lets a test play "missing"


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when Chromium is installed)."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return (f"Chromium is not installed at {CHROMIUM}: the browser tests need it – run `make browser` "
            "(installs Debian's chromium as root) or `apt-get install -y chromium`")


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say up front when the browser tests will be skipped (or fail, under CI=true)."""
    reason = browser_missing_reason()
    if reason is None:
        return None
    outcome = "FAIL (CI=true: a missing browser is a failure)" if os.environ.get("CI") == "true" else "be SKIPPED"
    return f"browser tests will {outcome}: {reason}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, browser tests skip with the reason – except under CI=true, where they fail."""
    reason = browser_missing_reason()
    if reason is None:
        return
    for item in items:
        if "browser" not in item.keywords:
            continue
        if os.environ.get("CI") == "true":
            item.add_marker(pytest.mark.usefixtures("_fail_without_browser"))
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def _fail_without_browser() -> None:
    """Under CI=true a browser test without a browser is a failure, not a skip."""
    pytest.fail(f"CI=true and {browser_missing_reason()}", pytrace=False)
