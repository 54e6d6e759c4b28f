"""A Vision Transformer's class map: gradient-weighted attention rollout (Chefer, Gur and Wolf, "Generic
Attention-model Explainability", ICCV 2021).

A ViT's patch tokens mix after its first block, so a map read from a layer's activations (LayerCAM) can
only come from the patch embeddings, which localise weakly. Rollout follows the attention instead: the
relevance of token j to token i starts as the identity, and each encoder block adds its attention,
weighted by the explained class score's gradient and kept where positive, averaged over the heads:
``R <- R + mean_h (grad_h * A_h)^+ @ R``. The class token's row of R over the patch tokens is the map.
``explain(method="rollout")``. On the synthetic quadrant images of tests/test_explain.py it localised less
well than Integrated Gradients at the patch embedding, which is therefore a ViT's default (docs/explain.md).

While the map is drawn each block's ``nn.MultiheadAttention`` runs as the same computation written out
(``_self_attention``; a test checks its output against the module's), so that its attention probabilities
are tensors the class score depends on; the module is restored afterwards.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def _self_attention(mha: nn.MultiheadAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.MultiheadAttention's self-attention in eval (batch first, packed input projection), written out
    so that the attention probabilities [B, heads, N, N] are a tensor the output is computed from."""
    b, n, d = x.shape
    heads = mha.num_heads
    qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).view(b, n, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(d // heads)).softmax(-1)
    return mha.out_proj((attn @ v).transpose(1, 2).reshape(b, n, d)), attn


@contextmanager
def _attention_kept(vit):
    """Within: each encoder block's attention probabilities [B, heads, N, N] appended to the list."""
    kept, saved = [], []
    for block in vit.encoder.layers:
        mha: nn.MultiheadAttention = block.self_attention
        if not (mha.batch_first and mha._qkv_same_embed_dim):
            raise ValueError("attention rollout needs batch-first self-attention with a packed projection")

        def forward(query, key, value, *args, _mha=mha, **kwargs):
            out, attn = _self_attention(_mha, query)
            kept.append(attn)
            return out, None

        saved.append(mha)
        mha.forward = forward
    try:
        yield kept
    finally:
        for mha in saved:
            del mha.forward  # the class's forward again


def vit_rollout(vit, forward, x: torch.Tensor, target: torch.Tensor | None):
    """(logits, explained classes, map [N, 1, side, side]) for images ``x`` through ``forward``."""
    with _attention_kept(vit) as attn:
        logits = forward(x.clone().requires_grad_(True))
    tb = logits.argmax(1) if target is None else target.to(logits.device)
    grads = torch.autograd.grad(logits.gather(1, tb.view(-1, 1)).sum(), attn)
    n = attn[0].shape[-1]
    rel = torch.eye(n, device=x.device).expand(x.shape[0], n, n)
    for a, g in zip(attn, grads):
        cam = (g * a).clamp(min=0).mean(1)  # [B, N, N]
        rel = rel + cam @ rel
    side = int(math.isqrt(n - 1))
    cam = rel[:, 0, 1:].reshape(-1, 1, side, side)
    return logits.detach(), tb, cam.detach().float()
