"""Video datasets: clips decoded once into the uint8 cache, frames sampled per batch.

``videofolder`` / ``ucf101`` find the clips (``video_files``), decode each once into at most
``data.cache_frames`` frames (``video_decode`` through ``image_cache``'s cache, which pads the
clips to one length and keeps each length), and return ``RawClips``. ``prepare`` is the image
path's (seeded valid/test splits, training statistics) with a ``VideoBundle`` whose loaders
sample ``data.frames`` frames per clip (``clip_loader``). Inputs are [B, T, C, H, W].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..config import DataConfig
from ..errors import DataError
from ..registry import DATASETS
from .base import DataBundle, RawImages
from .image_cache import cache_dir_default, load_or_decode_items
from .image_datasets import _root, decode_settings
from .image_files import FileList
from .video_decode import ClipSettings
from .video_files import clip_splits


@dataclass
class ClipSet:
    """A split of clips held in memory. ``images``: [N, L, C, H, W] uint8 (L cached frames, zero-padded
    past each clip's ``lengths``); ``frames``: how many of them a sample shows the model."""

    images: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    frames: int
    ids: Optional[list[str]] = None

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 5:
            raise DataError(f"clips must be uint8 [N, L, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if not len(self.images) == len(self.lengths) == len(self.labels):
            raise DataError(f"{len(self.images)} clips, {len(self.lengths)} lengths, {len(self.labels)} labels")
        self.labels, self.lengths = self.labels.long(), self.lengths.long()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """One sample's shape: (T, C, H, W)."""
        return (self.frames, *self.images.shape[2:])

    def subset(self, index: torch.Tensor) -> "ClipSet":
        ids = [self.ids[i] for i in index.tolist()] if self.ids is not None else None
        return ClipSet(self.images[index], self.lengths[index], self.labels[index], self.frames, ids)

    def sample_id(self, i: int) -> str:
        return self.ids[i] if self.ids is not None else str(i)

    def sample_images(self, n: int = 512, seed: int = 0) -> torch.Tensor:
        """Real (not padding) frames of a seeded sample of clips, [M, C, H, W], for normalisation."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        real = torch.arange(self.images.shape[1]).view(1, -1) < self.lengths[pick].view(-1, 1)
        return self.images[pick][real]


class VideoBundle(DataBundle):
    """A DataBundle of ClipSets: ``input_shape`` is (T, C, H, W); loaders sample frames per batch."""

    def info(self) -> dict:
        return {**super().info(), "input": "clip"}

    def model_kwargs(self) -> dict:
        return {"num_classes": self.num_classes, "in_channels": self.input_shape[1],
                "input_size": list(self.input_shape[2:])}

    def make_loaders(self, cfg, device: torch.device) -> dict:
        from .clip_loader import ClipLoader, ClipTransform

        d = cfg.data
        tf = ClipTransform.from_config(d, self.mean, self.std, frames=self.input_shape[0])
        eval_bs = d.eval_batch_size or 4 * d.batch_size
        return {name: ClipLoader(s, d.batch_size if name == "train" else eval_bs, shuffle=name == "train",
                                 seed=cfg.train.seed, transform=tf, device=device)
                for name, s in self.splits.items()}


@dataclass
class RawClips(RawImages):
    bundle_cls = VideoBundle


def clip_settings(cfg: DataConfig) -> ClipSettings:
    s = decode_settings(cfg)
    return ClipSettings(s.size, s.channels, s.resize, cfg.cache_frames, cfg.frames)


def load_clips(files: FileList, cfg: DataConfig, split: str) -> ClipSet:
    """Decoded once into the cache (memory-mapped), skipping or refusing bad and short clips."""
    settings = clip_settings(cfg)
    if settings.size is None:
        raise DataError("video datasets need data.size (frames of all clips must share a size), e.g. data.size=64")
    c, (h, w) = settings.channels, settings.size
    need = len(files) * cfg.cache_frames * c * h * w
    if need > cfg.cache_max_gb * 2**30:
        raise DataError(f"the {split} split's decoded clips need {need / 2**30:.1f} GB, over data.cache_max_gb="
                        f"{cfg.cache_max_gb}: lower data.size or data.cache_frames, or raise data.cache_max_gb")
    cache = None if not cfg.cache else Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir_default()
    d = load_or_decode_items(files, settings, cache, f"{cfg.name}-{split}", cfg.on_bad_image)
    return ClipSet(d.images, torch.tensor(d.lengths, dtype=torch.long), torch.tensor(d.labels, dtype=torch.long),
                   cfg.frames, [str(p) for p in d.paths])


@DATASETS.register("videofolder")
def videofolder(cfg: DataConfig) -> RawClips:
    """Clips in class folders (root/<class>/<clip>.avi or <clip>/<frame>.jpg), UCF101 split lists if present."""
    root = _root(cfg)
    files, classes = clip_splits(root, cfg.split_id, cfg.split_lists)
    splits = {name: load_clips(f, cfg, name) for name, f in files.items()}
    return RawClips(splits["train"], splits.get("test"), classes, str(root))


@DATASETS.register("ucf101")
def ucf101(cfg: DataConfig) -> RawClips:
    """UCF101 (UCF-101/<class>/*.avi with ucfTrainTestlist/): split data.split_id's train/test lists."""
    return videofolder(cfg)
