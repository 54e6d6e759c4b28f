"""Text generation from a language-model checkpoint: temperature, top-k, top-p, seeded.

``generate`` yields text pieces as they are sampled, so the CLI can stream them. A model
that returns a recurrent state is fed one token at a time with that state; one that returns
``None`` (the Transformer) is re-fed its last ``max_len`` tokens. Sampling draws from a
private ``torch.Generator``: the same seed gives the same text, whatever else ran before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Optional

import torch
from torch import nn

from ..data.vocab import EOS, Vocab, joins_left, tokenize
from ..errors import ConfigError

LOG = logging.getLogger("trainlab")


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: Optional[int] = None,
                  top_p: Optional[float] = None) -> torch.Tensor:
    """[V] logits -> [V] probabilities after temperature, top-k and nucleus (top-p) filtering."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p: a token stays if the mass before it is < top_p
        keep = (sorted_p.cumsum(0) - sorted_p) < top_p
        keep[0] = True
        mask = torch.zeros_like(probs, dtype=torch.bool).scatter_(0, order[keep], True)
        probs = torch.where(mask, probs, torch.zeros_like(probs))
        probs = probs / probs.sum()
    return probs


def check_options(temperature: float, top_k: Optional[int], top_p: Optional[float]) -> None:
    if temperature < 0:
        raise ConfigError(f"--temperature {temperature}: must be >= 0 (0 means greedy)")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"--top-k {top_k}: must be >= 1")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"--top-p {top_p}: must be in (0, 1]")


def prompt_tokens(vocab: Vocab, prompt: str) -> list[str]:
    """Prompt -> tokens; no prompt starts as after a line end (the corpus' own sentence start)."""
    toks = tokenize(prompt, vocab.level) if prompt else []
    if vocab.level != "char" and toks and not prompt.endswith("\n"):
        toks.pop()  # tokenize ends every line with <eos>; an unfinished prompt line continues instead
    return toks or [EOS if vocab.level != "char" else "\n"]


def unknown_tokens(vocab: Vocab, prompt: str) -> list[str]:
    """The prompt's tokens that the vocabulary lacks (they would be read as <unk>), sorted."""
    return sorted({t for t in prompt_tokens(vocab, prompt) if t not in vocab.stoi})


def encode_prompt(vocab: Vocab, prompt: str) -> torch.Tensor:
    """Prompt -> ids (unknown tokens as <unk>, with a warning)."""
    toks = prompt_tokens(vocab, prompt)
    unknown = sorted({t for t in toks if t not in vocab.stoi})
    if unknown:
        LOG.warning("prompt tokens not in the vocabulary (read as <unk>): %s", " ".join(unknown[:10]))
    return vocab.encode(toks)


@torch.no_grad()
def generate(model: nn.Module, vocab: Vocab, n: int, prompt: str = "", temperature: float = 1.0,
             top_k: Optional[int] = None, top_p: Optional[float] = None, seed: int = 0) -> Iterator[str]:
    """Yield ``n`` sampled tokens as text pieces (words with a space before, '\\n' for <eos>)."""
    check_options(temperature, top_k, top_p)
    if isinstance(model, nn.Module):
        model.eval()
        device = next(model.parameters()).device
    else:  # an ONNX export read by inference.served.OnnxLM: the same call, on the CPU
        device = torch.device("cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    context = encode_prompt(vocab, prompt).to(device)
    max_len = getattr(model, "max_len", None)
    logits, state = model(context.view(1, -1)[:, -max_len:] if max_len else context.view(1, -1), None)
    at_line_start = not prompt or prompt.endswith("\n")
    for _ in range(n):
        last = logits[0, -1]
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            probs = filter_logits(last, temperature, top_k, top_p)
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        piece = vocab.decode_token(nxt)
        if vocab.level != "char" and piece != "\n":
            tight = at_line_start or (vocab.level == "word_punct" and joins_left(piece))
            piece = piece if tight else " " + piece
        at_line_start = piece == "\n"
        yield piece
        token = torch.tensor([[nxt]], device=device)
        if state is not None:  # recurrent: one token, carried state
            logits, state = model(token, state)
        else:  # stateless: the recent context again
            context = torch.cat([context, token[0]])[-(max_len or 256):]
            logits, state = model(context.view(1, -1), None)
            state = None


def write_stream(pieces: Iterator[str], out: Optional[str | Path], echo) -> str:
    """Write pieces to ``out`` (always UTF-8, '\\n' line ends) and ``echo`` as they come; return the text."""
    fh = open(out, "w", encoding="utf-8", newline="\n") if out else None
    text = []
    try:
        for piece in pieces:
            text.append(piece)
            if fh is not None:
                fh.write(piece)
                fh.flush()
            if echo is not None:
                echo(piece)
    finally:
        if fh is not None:
            fh.close()
    return "".join(text)
