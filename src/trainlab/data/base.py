"""Datasets as one mechanism: a factory's result ``prepare``s itself into a bundle.

A dataset factory returns a raw object with ``prepare(cfg, meta=None) -> bundle``; ``build_data``
calls it, so images and text (``data/text.py``) share one path with no branching on kind.
A bundle has ``splits``, ``source``, ``split_indices``, ``num_classes`` (the task's output
size), ``model_kwargs()`` (constructor arguments inferred from the data), ``info()`` (plain
values a checkpoint keeps), ``describe()`` and ``make_loaders(cfg, device)``. ``meta`` is a
checkpoint's ``info()``: evaluation reuses the training statistics or vocabulary.

For images the raw object is ``RawImages`` (train/test uint8 tensors); ``prepare`` makes a
``DataBundle`` with seeded train/valid/test splits, class names and normalisation statistics.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import torch

from ..config import DataConfig
from ..errors import DataError
from .image_set import ImageSet
from .loaders import BatchTransform, DatasetLoader, TensorLoader

LOG = logging.getLogger("trainlab")


@dataclass
class RawImages:
    """What a dataset factory returns: its own splits (test may be absent)."""

    train: ImageSet
    test: Optional[ImageSet]
    class_names: list[str]
    source: str = ""  # where it was read from, for the log
    valid: Optional[ImageSet] = None  # a dataset's own validation split (else carved from train)
    split_names: dict = field(default_factory=dict)  # what a split really is, where "test" would mislead

    def prepare(self, cfg: DataConfig, meta: Optional[dict] = None) -> "DataBundle":
        bundle = _image_bundle(cfg, self)
        if meta:
            if meta.get("class_names") not in (None, bundle.class_names):
                raise DataError(f"the dataset's classes {bundle.class_names[:5]}... differ from the checkpoint's "
                                f"{meta['class_names'][:5]}...")
            bundle.mean, bundle.std = meta.get("mean", bundle.mean), meta.get("std", bundle.std)  # training stats
        return bundle


@dataclass
class DataBundle:
    splits: dict[str, ImageSet]
    class_names: list[str]
    input_shape: tuple[int, ...]  # (C, H, W)
    mean: list[float]
    std: list[float]
    split_indices: dict[str, list[int]] = field(default_factory=dict)
    source: str = ""
    split_names: dict = field(default_factory=dict)  # e.g. Tiny-ImageNet: test is its labelled val set

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> dict:
        """What a checkpoint needs to rebuild inputs for prediction."""
        return {"input_shape": list(self.input_shape), "mean": self.mean, "std": self.std,
                "class_names": self.class_names, "split_names": dict(self.split_names)}

    def model_kwargs(self) -> dict:
        return {"num_classes": self.num_classes, "in_channels": self.input_shape[0],
                "input_size": list(self.input_shape[1:])}

    def describe(self) -> str:
        return ", ".join(f"{k} {len(v):,}" for k, v in self.splits.items())

    def make_loaders(self, cfg, device: torch.device) -> dict:
        """In-memory splits: TensorLoader; file-backed ones: DataLoader workers, same batches."""
        tf = BatchTransform.from_config(cfg.data, self.mean, self.std, cfg.train.channels_last)
        eval_bs = cfg.data.eval_batch_size or 4 * cfg.data.batch_size
        out = {}
        for name, s in self.splits.items():
            kw = dict(shuffle=name == "train", seed=cfg.train.seed, transform=tf, device=device)
            bs = cfg.data.batch_size if name == "train" else eval_bs
            if isinstance(s, ImageSet):
                out[name] = TensorLoader(s, bs, **kw)
            else:
                workers = cfg.data.num_workers or min(4, os.cpu_count() or 1)
                out[name] = DatasetLoader(s, bs, num_workers=workers, **kw)
        return out


def _check_labels(s: ImageSet, num_classes: int, split: str) -> None:
    if len(s) == 0:
        raise DataError(f"the {split} split is empty")
    lo, hi = int(s.labels.min()), int(s.labels.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{split} labels range over [{lo}, {hi}] but there are {num_classes} classes")


def split_off(s: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet, torch.Tensor, torch.Tensor]:
    """Random split by fraction; returns (kept, held_out, kept_index, held_index)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(s), generator=g)
    n_out = int(round(len(s) * fraction))
    held, kept = perm[:n_out].sort().values, perm[n_out:].sort().values
    return s.subset(kept), s.subset(held), kept, held


def fold_assignment(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """[N] fold of each sample: within each class the samples are shuffled with ``seed`` and dealt to
    the folds in turn, so every fold holds each class in proportion (stratified), the folds are
    disjoint and together cover the data."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(len(labels), dtype=torch.long)
    offset = 0
    for c in torch.unique(labels).tolist():
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        out[idx] = (torch.arange(len(idx)) + offset) % folds  # a class's remainder starts where the last ended
        offset += len(idx)
    return out


def fold_split(s, folds: int, fold: int, seed: int):
    """(kept, held_out, kept_index, held_index): fold ``fold`` of ``fold_assignment`` held out."""
    if len(s) < folds:
        raise DataError(f"data.folds={folds}: the training split has only {len(s)} samples")
    which = fold_assignment(s.labels, folds, seed)
    held, kept = (which == fold).nonzero().flatten(), (which != fold).nonzero().flatten()
    return s.subset(kept), s.subset(held), kept, held


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of uint8 images in [0, 1] units, in chunks to bound memory."""
    c = images.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        s += x.sum(1)
        s2 += (x * x).sum(1)
    n = images.numel() // c
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def sample_shape(s) -> tuple[int, ...]:
    """(C, H, W) of an in-memory ImageSet or a file-backed split; (T, C, H, W) of a ClipSet."""
    return tuple(s.images.shape[1:]) if isinstance(s, ImageSet) else tuple(s.shape)


def build_data(cfg: DataConfig, raw=None, meta: Optional[dict] = None):
    """The registered factory's output (or ``raw``) prepared into a bundle; see the module doc."""
    from .. import registry

    if raw is None:
        raw = registry.DATASETS.create(cfg.name, cfg)
    return raw.prepare(cfg, meta)


def select_classes(raw: RawImages, names: list[str]) -> tuple[RawImages, torch.Tensor]:
    """``raw`` with only the samples of the classes ``names``, labelled 0.. in that order, and the
    kept training samples' indices in the dataset's own training split."""
    unknown = [n for n in names if n not in raw.class_names]
    if unknown:
        shown = ", ".join(raw.class_names[:20]) + (" ..." if len(raw.class_names) > 20 else "")
        raise DataError(f"data.classes: {unknown} not among the classes of {raw.source or 'the dataset'}: {shown}")
    lut = torch.full((len(raw.class_names),), -1, dtype=torch.long)
    lut[[raw.class_names.index(n) for n in names]] = torch.arange(len(names))

    def pick(s):
        if s is None:
            return None, None
        keep = (lut[s.labels] >= 0).nonzero().flatten()
        kept = s.subset(keep)
        kept.labels = lut[kept.labels]
        return kept, keep

    train, keep = pick(raw.train)
    out = replace(raw, train=train, test=pick(raw.test)[0], valid=pick(raw.valid)[0], class_names=list(names))
    return out, keep


def _image_bundle(cfg: DataConfig, raw: RawImages) -> DataBundle:
    """Train/valid/test with the configured fractions and seed."""
    if len(raw.class_names) < 2:
        raise DataError(f"dataset '{cfg.name}' has {len(raw.class_names)} class(es); classification needs >= 2")
    base = torch.arange(len(raw.train))
    if cfg.classes:
        raw, base = select_classes(raw, [str(c) for c in cfg.classes])
    train, test = raw.train, raw.test
    indices: dict[str, list[int]] = {}
    if test is None and cfg.test_fraction > 0:
        train, test, keep, held = split_off(train, cfg.test_fraction, cfg.split_seed + 1)
        indices["test"] = base[held].tolist()
        base = base[keep]
    splits = {"train": train}
    if cfg.folds:
        if raw.valid is not None:
            raise DataError(f"data.folds: dataset '{cfg.name}' has its own validation split; k-fold "
                            f"cross-validation folds the training split, so use a dataset without one")
        train, valid, keep, held = fold_split(train, cfg.folds, cfg.fold, cfg.split_seed)
        splits = {"train": train, "valid": valid}
        indices["valid"] = base[held].tolist()
        base = base[keep]
    elif raw.valid is not None:
        splits["valid"] = raw.valid
    elif cfg.valid_fraction > 0:
        train, valid, keep, held = split_off(train, cfg.valid_fraction, cfg.split_seed)
        splits = {"train": train, "valid": valid}
        indices["valid"] = base[held].tolist()
        base = base[keep]
    indices["train"] = base.tolist()
    if test is not None:
        splits["test"] = test
    else:
        LOG.info("dataset '%s' has no test split (set data.test_fraction to hold one out)", cfg.name)
    if cfg.max_samples:  # a seeded random subset: files are often sorted by class
        for k, v in list(splits.items()):
            if len(v) > cfg.max_samples:
                g = torch.Generator().manual_seed(cfg.split_seed + 2)
                keep = torch.randperm(len(v), generator=g)[:cfg.max_samples].sort().values
                splits[k] = v.subset(keep)
                if k in indices:
                    indices[k] = [indices[k][i] for i in keep.tolist()]
    for name, s in splits.items():
        _check_labels(s, len(raw.class_names), name)
    shapes = {sample_shape(s) for s in splits.values()}
    if len(shapes) != 1:
        raise DataError(f"splits have different image shapes: {sorted(shapes)}")
    if cfg.normalize:
        train_set = splits["train"]
        sample = train_set.images if isinstance(train_set, ImageSet) else train_set.sample_images(seed=cfg.split_seed)
        mean, std = channel_stats(sample)
    else:
        c = sample_shape(splits["train"])[0]
        mean, std = [0.0] * c, [1.0] * c
    bundle_cls = getattr(raw, "bundle_cls", DataBundle)  # clips: VideoBundle (data/video.py)
    return bundle_cls(splits, list(raw.class_names), shapes.pop(), mean, std, indices, raw.source,
                      dict(raw.split_names))
