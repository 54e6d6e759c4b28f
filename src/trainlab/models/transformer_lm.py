"""Decoder-only Transformer language model: pre-norm blocks, causal SDPA, tied weights.

Attention is torch's ``scaled_dot_product_attention`` with ``is_causal=True`` (flash or
memory-efficient kernels where the device has them). Positions are learned or sinusoidal.
``forward(x, state)`` returns ``(logits, None)``: windows are independent, so there is no
state to carry; generation re-feeds the last ``max_len`` tokens instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS


def sinusoidal(max_len: int, d_model: int) -> torch.Tensor:
    """[max_len, d_model] fixed positions of Vaswani et al. 2017."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, :d_model // 2]
    return pe


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # q, k, v: [B, heads, T, d_head]
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))  # [B, T, D]


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ff_size: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, num_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_size), nn.GELU(), nn.Linear(ff_size, d_model),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pre-norm: stable without warmup tricks
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


@MODELS.register("transformer_lm")
class TransformerLM(nn.Module):
    """A causal Transformer decoder language model: embeddings + positions, pre-norm blocks, tied output."""

    def __init__(self, vocab_size: int = 10000, d_model: int = 256, num_layers: int = 4, num_heads: int = 4,
                 ff_size: int = 1024, dropout: float = 0.1, max_len: int = 256, positions: str = "learned",
                 tie_weights: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ConfigError(f"model.init_args.d_model={d_model} must be divisible by num_heads={num_heads}")
        if positions not in ("learned", "sinusoidal"):
            raise ConfigError(f"model.init_args.positions={positions!r}: use learned or sinusoidal")
        self.max_len, self.d_model = max_len, d_model
        self.embedding = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.pos = nn.Parameter(torch.zeros(max_len, d_model))
            nn.init.normal_(self.pos, std=0.02)
        else:
            self.register_buffer("pos", sinusoidal(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, ff_size, dropout) for _ in range(num_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.decoder = nn.Linear(d_model, vocab_size)
        nn.init.normal_(self.embedding.weight, std=0.02)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def forward(self, x: torch.Tensor, state=None):
        t = x.shape[1]
        if t > self.max_len:
            raise ConfigError(f"window of {t} tokens is longer than model.init_args.max_len={self.max_len}; "
                              f"lower data.bptt or raise max_len")
        h = self.drop(self.embedding(x) + self.pos[:t])  # [B, T] -> [B, T, D]
        for block in self.blocks:
            h = block(h)                                  # [B, T, D]
        return self.decoder(self.ln_f(h)), None           # [B, T, V]
