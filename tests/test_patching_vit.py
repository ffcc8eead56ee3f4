"""Patching and concepts on a timm ViT (random weights): where the answer lives is known by construction.

timm's ViT classifies from the class token after the last block (``global_pool="token"``, a per-token
LayerNorm, then the head), so at the last block's output the class token carries the whole answer and no
patch token carries any of it – whatever the weights are.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explainer
from explainer.cli import main
from explainer.inside.patching import corrupt, patch

VIT = "vit_tiny_patch16_224"
LAST = "blocks.11"


@pytest.fixture(scope="module")
def vit() -> explainer.Classifier:
    return explainer.load_model(VIT, pretrained=False, device="cpu")


def test_only_the_class_token_carries_the_answer_after_the_last_block(vit, photos):
    clean = [photos["cat"]]
    corrupted = corrupt(vit, clean, "noise")
    before = {k: v.clone() for k, v in vit.module.state_dict().items()}
    result = patch(vit, clean, corrupted, layers=LAST, granularity="position", progress=False)
    assert len(result.sites) == 1 + 14 * 14 and result.site_map().shape == (14, 14)  # class token + the patch grid
    assert result.best_site == f"{LAST}#0"
    assert result.means[0] == pytest.approx(1.0, abs=1e-4)
    assert np.abs(result.means[1:]).max() < 1e-4
    assert all(torch.equal(before[k], v) for k, v in vit.module.state_dict().items())


def test_vit_cli_patch_and_concepts(vit, photos, tmp_path, capsys):
    files = []
    for name in ("cat", "coffee", "rocket", "astronaut"):
        files.append(tmp_path / f"{name}.png")
        photos[name].save(files[-1])
    assert main(["patch", str(files[0]), str(files[1]), "--model", VIT, "--random-weights",
                 "--layers", "patch_embed.proj,blocks.5," + LAST, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    restored = {row["site"]: row["restored"] for row in payload["sites"]}
    # the patch projection and a whole block's output lie on the only path: each restores everything
    assert restored == pytest.approx({"patch_embed.proj": 1.0, "blocks.5": 1.0, LAST: 1.0}, abs=1e-3)
    with torch.random.fork_rng():  # random weights are drawn from the global generator: the same seed, the same ViT
        torch.manual_seed(0)
        assert main(["concepts", *map(str, files), "--model", VIT, "--random-weights", "--layer", "blocks.5",
                     "--concepts", "3", "--json"]) == 0
        torch.manual_seed(0)
        same = explainer.load_model(VIT, pretrained=False, device="cpu")
    found = json.loads(capsys.readouterr().out)
    assert found["layer"] == "blocks.5" and len(found["concepts"]) == 3
    expected = explainer.concepts(same, [photos[f.stem] for f in files], layer="blocks.5", n_concepts=3)
    assert [row["importance"] for row in found["concepts"]] == pytest.approx([i.mean for i in expected.importance],
                                                                             rel=1e-4, abs=1e-6)
