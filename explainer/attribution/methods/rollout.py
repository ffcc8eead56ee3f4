"""Attention rollout for vision transformers (Abnar & Zuidema 2020).

Each block's self-attention ``A_l`` (``(T, T)`` over the tokens, heads fused by ``head_fusion``:
the mean, as in the paper, or the max/min) is mixed with the identity for the residual
connection and renormalized, ``Â_l = (A_l + I) / 2`` (rows sum to 1), and the blocks are
multiplied in order: ``R = Â_L ⋯ Â_1``. The map is the class token's row of ``R`` over the patch
tokens, reshaped to the patch grid and upsampled bilinearly to the input. Class, distillation
(DeiT) and register tokens are the model's ``num_prefix_tokens`` first tokens; they are left
out of the map. Rollout does not depend on the target class: it shows where the class token
gathers information from, not evidence for one class.

The attention weights are recomputed from each timm ``Attention`` module's own input (a
forward pre-hook: ``softmax(q_norm(q) · k_norm(k)ᵀ · scale)``), so fused attention kernels,
which never materialize the weights, need no switch. Hooks are removed on exit, error or not.
Models without such blocks (CNNs, Swin-style windowed attention) are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from explainer.attribution.registry import Job, MethodSpec, Output, Param, register_method
from explainer.errors import InputError

HEAD_FUSIONS = ("mean", "max", "min")


def attention_blocks(module: nn.Module) -> list[nn.Module]:
    """The global self-attention modules (fused ``qkv`` projection, ``num_heads``, ``scale``) in order."""
    return [m for m in module.modules()
            if isinstance(getattr(m, "qkv", None), nn.Linear) and hasattr(m, "num_heads") and hasattr(m, "scale")]


def _weights(attn: Any, x: torch.Tensor) -> torch.Tensor:
    """Attention probabilities ``(B, heads, T, T)`` that ``attn`` computes on its input ``x``."""
    batch, tokens, _dim = x.shape
    heads = int(attn.num_heads)
    qkv = attn.qkv(x).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    q = attn.q_norm(q) if hasattr(attn, "q_norm") else q
    k = attn.k_norm(k) if hasattr(attn, "k_norm") else k
    return ((q * attn.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1)


def attention_maps(module: nn.Module, inputs: torch.Tensor, head_fusion: str = "mean") -> list[torch.Tensor]:
    """Each block's head-fused attention ``(B, T, T)`` for one forward pass of ``inputs``."""
    blocks = attention_blocks(module)
    maps: list[torch.Tensor] = []

    def record(attn: nn.Module, args: tuple) -> None:
        weights = _weights(attn, args[0])
        fused = {"mean": weights.mean(dim=1), "max": weights.amax(dim=1), "min": weights.amin(dim=1)}[head_fusion]
        maps.append(fused)

    handles = [block.register_forward_pre_hook(record) for block in blocks]
    try:
        module(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return maps


def rollout(attentions: Sequence[torch.Tensor], prefix_tokens: int) -> torch.Tensor:
    """The class token's rolled-out attention to the patch tokens, ``(B, patches)``.

    ``attentions``: per block ``(B, T, T)`` row-stochastic matrices, first block first.
    """
    first = attentions[0]
    tokens = first.shape[-1]
    eye = torch.eye(tokens, device=first.device, dtype=torch.float64)
    result = eye.expand_as(first).clone().double()
    for attention in attentions:
        mixed = 0.5 * attention.double() + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result[:, 0, prefix_tokens:].float()


def run_attention_rollout(job: Job) -> Output:
    """Attention rollout of a timm ViT/DeiT; InputError for models without global self-attention."""
    module = job.module
    if not attention_blocks(module):
        raise InputError(
            f"attention_rollout needs a vision transformer with global self-attention blocks (timm ViT, DeiT, "
            f"BEiT, ...); {type(module).__name__} has none. For CNNs use gradcam, layercam or scorecam."
        )
    prefix = int(getattr(module, "num_prefix_tokens", 1) or 0)
    attentions = attention_maps(module, job.inputs, job.params["head_fusion"])
    patches = rollout(attentions, prefix)
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise InputError(f"attention_rollout expects a square patch grid after {prefix} prefix token(s), got "
                         f"{patches.shape[1]} patch tokens; set the model's num_prefix_tokens or use another method.")
    grid = patches.view(-1, 1, side, side)
    maps = F.interpolate(grid, size=tuple(job.inputs.shape[-2:]), mode="bilinear", align_corners=False)
    return Output(maps, {"blocks": len(attentions), "prefix_tokens": prefix, "grid": [side, side]})


register_method(MethodSpec(
    name="attention_rollout", title="Attention rollout", kind="attention", signed=False, forward_only=True,
    description=(
        "Vision transformers only: the attention of every block, mixed with the residual path and multiplied "
        "through the network, read from the class token (Abnar & Zuidema 2020). Class-agnostic."
    ),
    params=(Param("head_fusion", str, "mean", choices=HEAD_FUSIONS,
                  help="how the heads of a block are combined (the paper: mean)"),),
    runner=run_attention_rollout,
))
