"""Attention rollout on timm ViT/DeiT: known attention gives known maps; CNNs are refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import explainer
from explainer.attribution.methods.rollout import attention_maps, rollout

timm = pytest.importorskip("timm")


def _vit(name: str = "vit_tiny_patch16_224") -> explainer.Classifier:
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, img_size=64)
    return explainer.Classifier.from_module(model, input_size=64, name=name)


def test_identity_attention_gives_a_uniform_map():
    """Â = (I + I)/2 = I in every block: the class token keeps only itself, every patch gets the same (0)."""
    eye = torch.eye(17).expand(2, 17, 17)
    patches = rollout([eye] * 4, prefix_tokens=1)
    assert patches.shape == (2, 16)
    assert torch.all(patches == patches[:, :1])


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def test_uniform_attention_gives_a_uniform_map(name, one_torch_thread):
    """With q = k = 0 every block attends uniformly; by symmetry every patch gets the same rollout."""
    classifier = _vit(name)
    blocks: Any = classifier.module.blocks
    for block in blocks:
        torch.nn.init.zeros_(block.attn.qkv.weight)
        torch.nn.init.zeros_(block.attn.qkv.bias)
    explanation = explainer.explain(classifier, torch.rand(2, 3, 64, 64), "attention_rollout")
    maps = explanation.attributions[:, 0]
    assert explanation.params["prefix_tokens"] == (2 if "distilled" in name else 1)
    assert float(maps.std()) < 1e-6 and float(maps.mean()) > 0


def test_recomputed_attention_equals_timms_own_weights(one_torch_thread):
    """The pre-hook recomputation equals the probabilities timm's unfused path feeds to attn_drop."""
    classifier = _vit()
    inputs = torch.rand(2, 3, 64, 64)
    seen: list[torch.Tensor] = []
    handles = []
    blocks: Any = classifier.module.blocks
    for block in blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, a, o: seen.append(o.detach())))
    try:
        with torch.no_grad():
            ours = attention_maps(classifier.module, inputs)
    finally:
        for handle in handles:
            handle.remove()
        for block in blocks:
            block.attn.fused_attn = True
    assert len(ours) == len(seen) == 12
    for mine, theirs in zip(ours, seen):
        torch.testing.assert_close(mine, theirs.mean(dim=1), atol=1e-5, rtol=1e-4)


def test_rollout_matches_a_plain_product():
    torch.manual_seed(0)
    attentions = [torch.rand(1, 5, 5).softmax(-1) for _ in range(3)]
    expected = torch.eye(5)
    for a in attentions:
        mixed = (a[0] + torch.eye(5)) / 2
        expected = mixed / mixed.sum(-1, keepdim=True) @ expected
    torch.testing.assert_close(rollout(attentions, 1)[0], expected[0, 1:])


def test_non_transformers_are_refused_clearly(bundled_classifier):
    with pytest.raises(explainer.InputError, match="vision transformer.*gradcam"):
        explainer.explain(bundled_classifier, torch.rand(1, 3, 224, 224), "attention_rollout")
