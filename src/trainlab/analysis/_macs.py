"""Multiply-adds of one module call, from its inputs and output.

torchinfo multiplies a Linear's parameters by the batch size only (a Linear over a
[B, T, E] sequence is undercounted T times) and counts nothing for attention, so trainlab
counts the weight layers itself. Element-wise work (norms, activations, pooling) is not
counted: it is small beside the matrix products and conventions for it differ.

``F.scaled_dot_product_attention`` is a function, not a module, so no hook sees it;
``FunctionCounter`` catches its calls during the forward pass (a ``TorchFunctionMode``) and
credits them to the module that made them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode


def _first_tensor(x):
    if torch.is_tensor(x):
        return x
    if isinstance(x, PackedSequence):
        return x.data
    if isinstance(x, (tuple, list)):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _conv(m: nn.modules.conv._ConvNd, inputs, out) -> int:
    # each output element is a dot product over (in_channels / groups) x kernel
    return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)


def _linear(m: nn.Linear, inputs, out) -> int:
    return out.numel() * m.in_features


def _rnn(m: nn.RNNBase, inputs, out) -> int:
    x = inputs[0]
    if isinstance(x, PackedSequence):
        steps = x.data.shape[0]  # sum of sequence lengths over the batch
    else:
        steps = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    gates = {"LSTM": 4, "GRU": 3}.get(m.mode, 1)
    dirs = 2 if m.bidirectional else 1
    h = m.hidden_size
    out_h = m.proj_size or h
    total = 0
    for layer in range(m.num_layers):
        width = m.input_size if layer == 0 else out_h * dirs
        per_step = gates * h * (width + out_h) + (h * out_h if m.proj_size else 0)
        total += steps * dirs * per_step
    return total


def _attention(m: nn.MultiheadAttention, inputs, out) -> int:
    # the module uses out_proj.weight directly (its forward hook never fires), so count it here
    q, k = inputs[0], inputs[1] if len(inputs) > 1 else inputs[0]
    batch_first = getattr(m, "batch_first", False)
    if q.dim() == 3:
        b, lq = (q.shape[0], q.shape[1]) if batch_first else (q.shape[1], q.shape[0])
        ls = k.shape[1] if batch_first else k.shape[0]
    else:  # unbatched [L, E]
        b, lq, ls = 1, q.shape[0], k.shape[0]
    e = m.embed_dim
    projections = lq * e * e + ls * e * m.kdim + ls * e * m.vdim + lq * e * e
    scores_and_mix = 2 * lq * ls * e  # QK^T and softmax(QK^T) V over all heads
    return b * (projections + scores_and_mix)


_RULES = [(nn.modules.conv._ConvNd, _conv), (nn.Linear, _linear), (nn.RNNBase, _rnn),
          (nn.MultiheadAttention, _attention)]


def module_macs(m: nn.Module, inputs: tuple, out) -> int:
    """Mult-adds of one call of ``m`` (0 for modules without a rule)."""
    out_t = _first_tensor(out)
    if out_t is None:
        return 0
    for cls, rule in _RULES:
        if isinstance(m, cls):
            return int(rule(m, inputs, out_t))
    return 0


def sdpa_macs(args: tuple, kwargs: dict) -> int:
    """QK^T and attn @ V of ``F.scaled_dot_product_attention``: batch x L x S x (E + Ev).

    q: [..., L, E], k: [..., S, E], v: [..., S, Ev]; every leading (batch, head) dimension is
    q's. A causal mask is counted in full, as the dense kernels compute it.
    """
    names = ("query", "key", "value")
    q, k, v = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    return math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def sdpa_shapes(args, kwargs) -> str:
    """What the attention computes, for the summary's note: per-head q/k/v and the score matrix."""
    names = ("query", "key", "value")
    q, k, v = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
    causal = kwargs.get("is_causal", args[5] if len(args) > 5 else False)
    heads = q.shape[-3] if q.dim() >= 3 else 1
    qkv = f"q/k/v {list(q.shape)}" if q.shape == k.shape == v.shape else \
        f"q {list(q.shape)} k {list(k.shape)} v {list(v.shape)}"
    return (f"attention: {heads} heads x {q.shape[-1]}; {qkv}; scores [heads, T, T] = "
            f"[{heads}, {q.shape[-2]}, {k.shape[-2]}]{', causal' if causal else ''}")


class FunctionCounter(TorchFunctionMode):
    """Counts attention functions called while active; ``credit(macs)`` books them on the caller."""

    def __init__(self, credit):
        super().__init__()
        self.credit = credit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            self.credit(sdpa_macs(args, kwargs), sdpa_shapes(args, kwargs))
        return func(*args, **kwargs)
