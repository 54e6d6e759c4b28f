"""Recurrent word/character language model: embedding -> RNN/LSTM/GRU -> vocabulary logits.

The layout of pytorch/examples' word_language_model, batch-first, with separate embedding,
hidden (between layers) and output dropouts and optional tied input/output weights
(Press & Wolf 2017; Inan et al. 2017). ``forward(x, state)`` returns ``(logits, state)``
so a task can carry the state across windows.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import MODELS

_RNNS = {"LSTM": (nn.LSTM, {}), "GRU": (nn.GRU, {}), "RNN_TANH": (nn.RNN, {"nonlinearity": "tanh"}),
         "RNN_RELU": (nn.RNN, {"nonlinearity": "relu"})}


@MODELS.register("rnn_lm")
class RNNLM(nn.Module):
    """Word embedding -> LSTM/GRU layers -> linear decoder (weights tied to the embedding if asked)."""

    def __init__(self, vocab_size: int = 10000, rnn_type: str = "LSTM", emb_size: int = 200,
                 hidden_size: int = 200, num_layers: int = 2, dropout: float = 0.2,
                 emb_dropout: Optional[float] = None, out_dropout: Optional[float] = None,
                 tie_weights: bool = False):
        super().__init__()
        if rnn_type not in _RNNS:
            raise ConfigError(f"model.init_args.rnn_type={rnn_type!r}: use one of {', '.join(_RNNS)}")
        if tie_weights and emb_size != hidden_size:
            raise ConfigError(f"model.init_args.tie_weights needs emb_size == hidden_size "
                              f"(got {emb_size} and {hidden_size})")
        cls, extra = _RNNS[rnn_type]
        self.rnn_type, self.num_layers, self.hidden_size = rnn_type, num_layers, hidden_size
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_drop = nn.Dropout(dropout if emb_dropout is None else emb_dropout)
        # ``dropout`` of nn.RNN acts between layers: the "hidden" dropout
        self.rnn = cls(emb_size, hidden_size, num_layers, batch_first=True,
                       dropout=dropout if num_layers > 1 else 0.0, **extra)
        self.out_drop = nn.Dropout(dropout if out_dropout is None else out_dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        self._init_weights()
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    def _init_weights(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # the reference's init: small uniform, zero bias
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x: torch.Tensor, state=None):
        emb = self.emb_drop(self.embedding(x))   # [B, T] -> [B, T, E]
        out, state = self.rnn(emb, state)        # [B, T, H]; state [L, B, H] (LSTM: a pair)
        logits = self.decoder(self.out_drop(out))  # [B, T, V]
        return logits, state
