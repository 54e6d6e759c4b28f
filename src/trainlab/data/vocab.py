"""Tokenisation and vocabulary for language modelling.

Word level follows the convention behind the published PTB and WikiText-2 figures (and
pytorch/examples' ``data.py``): each line is split on whitespace and ends with ``<eos>``.
Character level keeps every character, newline included. Tokens never seen in training (or
cut by ``vocab_size`` / ``min_freq``) become ``<unk>``. The vocabulary travels in checkpoints
as plain lists and strings so that ``torch.load(weights_only=True)`` can read it.
"""

from __future__ import annotations

import re

from collections import Counter
from typing import Iterable, Optional

import torch

from ..errors import DataError

UNK, EOS = "<unk>", "<eos>"


# word_punct: a word (letters/digits, with inner apostrophes or hyphens: don't, well-known), or one
# punctuation mark; so "birth,--an" is birth , - - an instead of one rare word
_WORD_PUNCT = re.compile(r"\w+(?:['’-]\w+)*|[^\w\s]")


def tokenize(text: str, level: str = "word") -> list[str]:
    """Text -> tokens. Word level: whitespace-split lines, each followed by ``<eos>``; word_punct:
    the same with punctuation split from the words; char: every character."""
    if level == "char":
        return list(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":  # a final newline ends the last line; it does not start a new one
        lines.pop()
    split = _WORD_PUNCT.findall if level == "word_punct" else str.split
    tokens: list[str] = []
    for line in lines:  # per line, not per token: the split and list.extend run in C
        tokens.extend(split(line))
        tokens.append(EOS)
    return tokens


def joins_left(piece: str) -> bool:
    """word_punct output: punctuation that sits against the word before it (no space)."""
    return len(piece) == 1 and piece in ".,;:!?)]}’'\"" 


class Vocab:
    """Token <-> id. ``itos[0]`` is ``<unk>``; word level has ``<eos>`` at 1."""

    def __init__(self, itos: list[str], level: str = "word"):
        if len(set(itos)) != len(itos):
            raise DataError("vocabulary has duplicate tokens")
        self.itos = list(itos)
        self.level = level
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk = self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, tokens: Iterable[str], level: str = "word", max_size: Optional[int] = None,
              min_freq: int = 1) -> "Vocab":
        """Most frequent first (ties in order of first appearance), specials always kept."""
        specials = [UNK] if level == "char" else [UNK, EOS]
        counts = Counter(tokens)  # Counter keeps first-appearance order, most_common sorts stably
        words = [w for w, c in counts.most_common() if c >= min_freq and w not in specials]
        if max_size is not None:
            words = words[:max(0, max_size - len(specials))]
        return cls(specials + words, level)

    def encode(self, tokens: list[str]) -> torch.Tensor:
        get, unk = self.stoi.get, self.unk
        return torch.tensor([get(t, unk) for t in tokens], dtype=torch.long)

    def decode_token(self, i: int) -> str:
        """One id -> the text it stands for in generated output."""
        tok = self.itos[i]
        if self.level == "char":
            return tok
        return "\n" if tok == EOS else tok

    def to_meta(self) -> dict:
        return {"level": self.level, "itos": self.itos}

    @classmethod
    def from_meta(cls, meta: dict) -> "Vocab":
        if "itos" not in meta:
            raise DataError("the checkpoint holds no vocabulary (meta['itos']): not a language-model checkpoint")
        return cls(meta["itos"], meta.get("level", "word"))
