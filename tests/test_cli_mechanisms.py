"""`explainer patch`, `explainer concepts` and `explainer tcav` on the bundled model: the CLI gives the library's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import explainer
from explainer.cli import main

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory, photos) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mechanism_photos")
    files = {}
    for name in ("cat", "coffee"):
        files[name] = folder / f"{name}.png"
        photos[name].save(files[name])
    return files


def _json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_patching_a_layer_every_signal_passes_restores_the_whole_gap(photo_files, capsys):
    # The stem, a stage output and the last feature map lie on the path every signal takes: each restores all of it.
    payload = _json(capsys, ["patch", str(photo_files["cat"]), str(photo_files["coffee"]),
                             "--layers", "conv_stem,blocks.5,bn2", "--json"])
    assert payload["corruption"] == "image" and payload["target"] in CAT_CLASSES
    assert payload["clean_logit"] > payload["corrupted_logit"] + 1
    assert [row["site"] for row in payload["sites"]] == ["conv_stem", "blocks.5", "bn2"]
    assert [row["restored"] for row in payload["sites"]] == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)
    assert "3 of 3 sites restore" in payload["verdict"] and "1 pair: no interval" in payload["verdict"]


def test_position_patching_matches_the_library(photo_files, capsys, bundled_classifier):
    payload = _json(capsys, ["patch", str(photo_files["cat"]), "--corruption", "noise", "--granularity", "position",
                             "--layers", "bn2", "--json"])
    assert payload["grid"] == [7, 7] and len(payload["sites"]) == 49 and payload["forwards"] == 51
    cat = explainer.load_image(photo_files["cat"])
    expected = explainer.patch(bundled_classifier, [cat], explainer.corrupt(bundled_classifier, [cat], "noise"),
                               layers="bn2", granularity="position", progress=False)
    assert [row["restored"] for row in payload["sites"]] == pytest.approx(expected.means.tolist(), abs=1e-5)
    assert payload["best_site"] == expected.best_site

    assert main(["patch", str(photo_files["cat"]), "--corruption", "noise", "--granularity", "position",
                 "--layers", "bn2", "--top-sites", "3"]) == 0
    text = capsys.readouterr().out
    assert f"  {expected.best_site}" in text.splitlines()[1] and len(text.splitlines()) == 5


def test_patch_rejects_contradictory_input_with_the_fix(photo_files, capsys):
    assert main(["patch", str(photo_files["cat"]), str(photo_files["coffee"]), "--corruption", "blur"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["patch", str(photo_files["cat"]), "--granularity", "channel", "--layers", "bn2,conv_head"]) == 2
    assert "give one layer" in capsys.readouterr().err


def test_concepts_cli_writes_crops_and_gives_the_library_numbers(photo_files, capsys, tmp_path, bundled_classifier):
    files = [str(photo_files["cat"]), str(photo_files["coffee"])]
    payload = _json(capsys, ["concepts", *files, "--layer", "blocks.5", "--concepts", "3",
                             "--out-dir", str(tmp_path / "crops"), "--json"])
    assert [row["concept"] for row in payload["concepts"]] == [0, 1, 2] and payload["layer"] == "blocks.5"
    images = [explainer.load_image(path) for path in files]
    expected = explainer.concepts(bundled_classifier, images, layer="blocks.5", n_concepts=3)
    assert [row["importance"] for row in payload["concepts"]] == pytest.approx(
        [i.mean for i in expected.importance], rel=1e-4, abs=1e-6)
    assert len(payload["files"]) == 3
    strip = Image.open(payload["files"][0])
    assert strip.size == (224 * len(payload["top_crops"][0]), 224)


def test_tcav_cli_reports_every_layer_with_holm_adjusted_p(photo_files, capsys, tmp_path):
    rng = np.random.default_rng(0)
    cat = np.asarray(explainer.load_image(photo_files["cat"]).resize((224, 224)))
    concept, random = [], []
    for i in range(4):  # the cat shifted: a "cat fur" concept
        path = tmp_path / f"concept_{i}.png"
        Image.fromarray(np.roll(cat, 20 * i, axis=1)).save(path)
        concept.append(str(path))
    for i in range(16):  # the permutation test needs 4 × as many random images as concept images
        path = tmp_path / f"random_{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        random.append(str(path))
    payload = _json(capsys, ["tcav", "--concept", *concept, "--random", *random, "--layers", "blocks.5,bn2",
                             "--target", "Egyptian cat", "--json"])
    assert [row["layer"] for row in payload["layers"]] == ["blocks.5", "bn2"] and payload["runs"] == 10
    for row in payload["layers"]:
        assert 0 <= row["score"] <= 1 and row["p_adjusted"] >= row["p_value"]
    assert payload["test"] == "permutation" and payload["permutations"] == 99
    assert "Holm" in payload["test_description"] and payload["target"] == "Egyptian cat"
    for row in payload["layers"]:
        assert row["p_value"] >= 1 / 100  # the smallest p-value 99 pseudo-concepts can give
    kim = _json(capsys, ["tcav", "--concept", *concept, "--random", *random[:8], "--layers", "bn2",
                         "--target", "Egyptian cat", "--test", "kim", "--json"])
    assert kim["test"] == "kim" and kim["permutations"] == 0 and "t-test" in kim["test_description"]
    assert main(["tcav", "--concept", *concept, "--random", *random[:8], "--layers", "bn2", "--target", "1"]) == 2
    assert "--test kim" in capsys.readouterr().err  # the library's advice in the CLI's words
    assert main(["tcav", "--concept", *concept, "--random", *random, "--layers", "bn2", "--target", "1",
                 "--runs", "5"]) == 2
    assert "at least 10" in capsys.readouterr().err


def test_feature_picture_cli_gives_the_library_check(tmp_path, capsys, bundled_classifier):
    payload = _json(capsys, ["feature", "--layer", "blocks.4", "--channel", "20", "--steps", "2", "--size", "64",
                             "--out-dir", str(tmp_path), "--json"])
    expected = explainer.visualize_channel(bundled_classifier, layer="blocks.4", channel=20, steps=2, size=64)
    assert expected.check is not None
    assert payload["activation"] == pytest.approx(expected.activation, rel=1e-5)
    assert payload["check"]["reach"] == pytest.approx(expected.check.reach, rel=1e-5)
    assert payload["check"]["trustworthy"] == expected.check.trustworthy
    assert payload["check"]["exemplars"]["indices"] == expected.check.exemplars.indices
    assert payload["verdict"] == expected.verdict() and len(payload["written"]) == 1 + 9
    assert Image.open(tmp_path / "feature.png").size == (64, 64)
    assert main(["feature", "--layer", "blocks.4", "--channel", "20", "--exemplars", str(tmp_path / "feature.png")]) != 0
    assert "--exemplars needs at least 4 images" in capsys.readouterr().err


def test_mechanism_commands_refuse_a_call_over_budget_in_cli_words(photo_files, capsys):
    cat = str(photo_files["cat"])
    assert main(["concepts", cat, "--grid", "6", "--budget", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "This concepts call is estimated at ≈" in err and "over the time budget of 1 ms" in err
    assert "--grid 6" in err and "--concepts 10" in err and "--budget 0" in err
