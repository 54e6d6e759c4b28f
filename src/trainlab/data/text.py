"""Text corpora for language modelling: read once, tokenised once, held as id tensors.

The ``text`` dataset (aliases ``ptb``, ``wikitext2``) reads ``data.root``: a folder in the
WikiText-2 or PTB layout, or one plain file split by fractions. Its factory returns a
``TextCorpus``; ``prepare`` builds the vocabulary from the training split (or takes the
checkpoint's, for evaluation) and returns a ``TextBundle`` that makes BPTT loaders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from ..config import Config, DataConfig
from ..errors import DataError
from ..registry import DATASETS
from .text_files import carve, locate, read_text
from .text_loader import BPTTLoader
from .vocab import Vocab, tokenize


@dataclass
class TextBundle:
    """Splits as 1-D int64 id tensors plus their vocabulary; the same interface as DataBundle."""

    splits: dict[str, torch.Tensor]
    vocab: Vocab
    source: str = ""
    bptt: int = 35  # the window length: what `trainlab summary CKPT` feeds the model
    split_indices: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    def model_kwargs(self) -> dict:
        return {"vocab_size": len(self.vocab)}

    def info(self) -> dict:
        return {**self.vocab.to_meta(), "vocab_size": len(self.vocab),
                "tokens": {k: len(v) for k, v in self.splits.items()},
                "input_shape": [self.bptt], "input_dtype": "long"}

    def describe(self) -> str:
        sizes = ", ".join(f"{k} {len(v):,} tokens" for k, v in self.splits.items())
        return f"{sizes}; {self.vocab.level} vocabulary {len(self.vocab):,}"

    def make_loaders(self, cfg: Config, device: torch.device) -> dict:
        d = cfg.data
        eval_bs = d.eval_batch_size or d.batch_size
        return {name: BPTTLoader(ids, d.batch_size if name == "train" else eval_bs, d.bptt, device=device,
                                 seed=cfg.train.seed, variable=d.variable_bptt and name == "train", split=name)
                for name, ids in self.splits.items()}


@dataclass
class TextCorpus:
    """What the factory returns: the raw text of each split (valid/test may be carved later)."""

    texts: dict[str, str]
    level: str
    source: str

    def prepare(self, cfg: DataConfig, meta: Optional[dict] = None) -> TextBundle:
        """Tokenise, build (or reuse the checkpoint's) vocabulary, encode every split."""
        if cfg.classes:
            raise DataError(f"data.classes={cfg.classes}: a text corpus has no classes (the key keeps some "
                            f"classes of a classification dataset)")
        tokens = {k: tokenize(t, self.level) for k, t in self.texts.items()}
        if meta is not None and "itos" in meta:
            vocab = Vocab.from_meta(meta)
            if vocab.level != self.level:
                raise DataError(f"the checkpoint's vocabulary is {vocab.level}-level but data.level={self.level}")
        else:
            vocab = Vocab.build(tokens["train"], self.level, cfg.vocab_size, cfg.min_freq)
        splits = {}
        for name, toks in tokens.items():
            ids = vocab.encode(toks)
            splits[name] = ids[:cfg.max_tokens] if cfg.max_tokens else ids
        return TextBundle(splits, vocab, self.source, bptt=cfg.bptt)


def load_corpus(cfg: DataConfig) -> TextCorpus:
    if not cfg.root:
        raise DataError("data.root is not set: point it at a corpus folder (train.txt/valid.txt/test.txt or "
                        "ptb.train.txt[.gz] ...) or at one plain-text file")
    if cfg.folds:
        raise DataError("data.folds: k-fold cross-validation is for classification data (images, clips); a "
                        "text corpus is one stream, split by data.valid_fraction or its own valid file")
    found = locate(cfg.root, cfg.files)
    texts = {k: read_text(p) for k, p in found.items() if p is not None}
    missing = {k: f for k, f in (("valid", cfg.valid_fraction), ("test", cfg.test_fraction))
               if found[k] is None}
    if any(f > 0 for f in missing.values()):  # carve the missing splits off the end of train
        texts.update(carve(texts["train"], {k: f for k, f in missing.items() if f > 0}))
    order = [k for k in ("train", "valid", "test") if k in texts]
    source = ", ".join(f"{k}={found[k] or 'carved from train'}" for k in order)
    return TextCorpus({k: texts[k] for k in order}, cfg.level, source)


@DATASETS.register("text")
def text(cfg: DataConfig) -> TextCorpus:
    """A text corpus for language modelling: a WikiText-2/PTB folder or one plain file (data.root)."""
    return load_corpus(cfg)


@DATASETS.register("ptb")
def ptb(cfg: DataConfig) -> TextCorpus:
    """Penn Treebank (Mikolov): ptb.{train,valid,test}.txt[.gz] under data.root."""
    return load_corpus(cfg)


@DATASETS.register("wikitext2")
def wikitext2(cfg: DataConfig) -> TextCorpus:
    """WikiText-2: {train,valid,test}.txt or wiki.*.tokens under data.root."""
    return load_corpus(cfg)
