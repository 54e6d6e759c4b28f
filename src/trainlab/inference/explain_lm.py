"""``trainlab explain LM_CKPT --prompt TEXT``: what a language model makes of a prompt.

Every model: the surprisal of each token given the ones before it (-log2 p, in bits), drawn as
the prompt coloured by surprisal. ``transformer_lm``: the attention weights of every layer and
head over the prompt (query token x key token, causal), recomputed from each block's q and k
(read by a hook on its ``qkv`` projection), exactly as ``scaled_dot_product_attention`` weighs them.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import torch

from .. import atomic


@torch.no_grad()
def surprisal(model, ids: torch.Tensor) -> list[float | None]:
    """Bits per token of ``ids`` [T] (the first has no context: None)."""
    logits, _ = model(ids.view(1, -1), None)
    logp = logits[0, :-1].float().log_softmax(-1)
    bits = (-logp.gather(1, ids[1:].view(-1, 1))[:, 0] / math.log(2)).tolist()
    return [None, *bits]


@torch.no_grad()
def attention_maps(model, ids: torch.Tensor) -> torch.Tensor | None:
    """[layers, heads, T, T] attention weights of a ``transformer_lm`` (None for other models)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not all(hasattr(b, "attn") and hasattr(b.attn, "qkv") for b in blocks):
        return None
    found = []

    def hook(mod, inp, out, heads):
        b, t, three_d = out.shape
        q, k, _ = out.view(b, t, 3, heads, three_d // 3 // heads).permute(2, 0, 3, 1, 4)
        w = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(t, t, dtype=torch.bool, device=w.device).triu(1)
        found.append(w.masked_fill(mask, float("-inf")).softmax(-1)[0])  # [heads, T, T]

    handles = [b.attn.qkv.register_forward_hook(lambda m, i, o, h=b.attn.num_heads: hook(m, i, o, h))
               for b in blocks]
    try:
        model(ids.view(1, -1), None)
    finally:
        for h in handles:
            h.remove()
    return torch.stack(found)


def _surprisal_png(tokens: list[str], bits: list) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.plots import _png

    fig, ax = plt.subplots(figsize=(min(14, 0.45 * len(tokens) + 2), 3.2))
    vals = [b if b is not None else 0.0 for b in bits]
    ax.bar(range(len(tokens)), vals, color=[plt.get_cmap("magma_r")(min(v / 16, 1.0)) for v in vals])
    ax.set_xticks(range(len(tokens)))
    ax.set_xticklabels([t[:12] for t in tokens], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("surprisal (bits)")
    ax.set_title("surprisal of each token given the tokens before it", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def _attention_png(att: torch.Tensor, tokens: list[str], layer: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.plots import _png

    heads, t = att.shape[0], att.shape[-1]
    cols = min(4, heads)
    rows = math.ceil(heads / cols)
    side = max(2.6, min(5.0, 0.22 * t + 1))
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    labels = [s[:10] for s in tokens]
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(att[h].cpu().numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"layer {layer + 1}, head {h + 1}", fontsize=9)
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
        ax.set_xticklabels(labels, rotation=90, fontsize=6)
        ax.set_yticklabels(labels, fontsize=6)
    fig.supxlabel("attended token (key)", fontsize=9)
    fig.supylabel("token (query)", fontsize=9)
    return _png(fig)


def explain_lm(model, prompt: str, out: Path) -> Path:
    """Surprisal (and attention for a Transformer) of ``prompt`` -> PNGs, index.json, index.html in ``out``."""
    from ..data.vocab import Vocab
    from .generate import encode_prompt

    vocab = Vocab.from_meta(model.trainlab_meta)
    model.eval()
    ids = encode_prompt(vocab, prompt).to(next(model.parameters()).device)
    max_len = getattr(model, "max_len", None)
    ids = ids[-max_len:] if max_len else ids
    tokens = [vocab.itos[i] for i in ids.tolist()]
    bits = surprisal(model, ids)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out / "surprisal.png", _surprisal_png(tokens, bits))
    att = attention_maps(model, ids)
    images = ["surprisal.png"]
    for layer in range(0 if att is None else att.shape[0]):
        images.append(f"attention_layer{layer + 1}.png")
        atomic.write_bytes(out / images[-1], _attention_png(att[layer], tokens, layer))
    atomic.write_text(out / "index.json", json.dumps({"tokens": tokens, "surprisal_bits": bits, "images": images,
                                                      "attention": None if att is None else att.tolist()}))
    top = max([b for b in bits if b is not None] + [1.0])
    spans = "".join(f'<span style="background:rgba(207,34,46,{0.85 * (b or 0) / top:.2f})" title="'
                    f'{"" if b is None else f"{b:.2f} bits"}">{html.escape(t)}</span> ' for t, b in zip(tokens, bits))
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>trainlab explain</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "p.t{font-size:1.2em;line-height:1.9} img{max-width:100%;display:block;margin:1em 0}</style></head><body>"
            "<h1>What the language model makes of the prompt</h1>"
            f"<p>Each token shaded by its surprisal (-log2 p given the tokens before it; darkest = {top:.1f} bits, "
            f"the most surprising here; hover for the bits):</p>"
            f"<p class=\"t\">{spans}</p>" + "".join(f'<img src="{i}" alt="{i}">' for i in images) + "</body></html>\n")
    atomic.write_text(out / "index.html", page)
    return out / "index.html"
