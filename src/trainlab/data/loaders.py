"""Batch iteration with no per-sample Python work, resumable from any batch.

``TensorLoader`` keeps a split as one uint8 tensor on the training device, draws a
permutation per epoch from (seed, epoch) and augments whole batches there. Because every
random choice is a function of (seed, epoch, batch), a run resumed at batch k of an epoch
sees exactly the batches an uninterrupted run would. ``DatasetLoader`` wraps any
``torch.utils.data.Dataset`` (a notebook user's own) with the same interface.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from .base import ImageSet


def _seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


class BatchTransform:
    """uint8 [B, C, H, W] -> normalised float, with batched random crops/flips in training."""

    def __init__(self, mean, std, crop_padding: int = 0, hflip: bool = False,
                 random_resized: bool = False, rrc_scale=(0.35, 1.0), channels_last: bool = False):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.random_resized = random_resized
        self.rrc_scale = tuple(rrc_scale)
        self.channels_last = channels_last
        self._stats: dict = {}  # device -> (mean, std): no host-to-device copy per batch

    @classmethod
    def from_config(cls, data_cfg, mean, std, channels_last: bool = False) -> "BatchTransform":
        return cls(mean, std, data_cfg.crop_padding, data_cfg.hflip, data_cfg.random_resized_crop,
                   data_cfg.rrc_scale, channels_last)

    def __call__(self, x: torch.Tensor, train: bool, gen: Optional[torch.Generator]) -> torch.Tensor:
        if train and self.crop_padding:
            x = random_crop(x, self.crop_padding, gen)
        x = x.float()
        if train and self.random_resized:
            x = random_resized_crop(x, self.rrc_scale, gen)
        if train and self.hflip:
            flip = torch.rand(len(x), generator=gen, device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if x.device not in self._stats:
            self._stats[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        mean, std = self._stats[x.device]
        x = (x.div_(255) - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def random_resized_crop(x: torch.Tensor, scale, gen: Optional[torch.Generator],
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-sample random box (area fraction in ``scale``, aspect in ``ratio``) resized back to HxW,
    for the whole batch at once with roi_align (bilinear)."""
    from torchvision.ops import roi_align

    b, _, h, w = x.shape
    dev = x.device  # every draw on the batch's device: no host round trip per batch
    area = torch.empty(b, device=dev).uniform_(scale[0], scale[1], generator=gen) * h * w
    r = torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen).exp()
    bw = (area * r).sqrt().clamp(1, w)
    bh = (area / r).sqrt().clamp(1, h)
    x0 = torch.rand(b, generator=gen, device=dev) * (w - bw)
    y0 = torch.rand(b, generator=gen, device=dev) * (h - bh)
    boxes = torch.stack([torch.arange(b, dtype=torch.float32, device=dev), x0, y0, x0 + bw, y0 + bh], 1)
    return roi_align(x, boxes.to(x.dtype), output_size=(h, w), spatial_scale=1.0, sampling_ratio=2, aligned=True)


def random_crop(x: torch.Tensor, pad: int, gen: Optional[torch.Generator]) -> torch.Tensor:
    """Per-sample random crop of size HxW from the zero-padded batch, by gathering indices."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return xp[bi, ci, rows, cols]


class TensorLoader:
    """Batches of a split held as tensors on ``device``; yields dicts of inputs/targets/index."""

    def __init__(self, data: ImageSet, batch_size: int, *, shuffle: bool, seed: int,
                 transform: BatchTransform, device: torch.device, drop_last: bool = False):
        self.data = data
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.transform = transform
        self.device = device
        self.drop_last = drop_last and len(data) >= batch_size

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.labels)

    def index_batches(self, epoch: int) -> list[torch.Tensor]:
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(self.seed, epoch)))
        else:
            order = torch.arange(n)
        return [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]

    def batch_generator(self, epoch: int, b: int) -> Optional[torch.Generator]:
        """The augmentation randomness of batch ``b``: a function of (seed, epoch, b) only, drawn on
        the training device (so the same seed gives other crops on a GPU than on the CPU)."""
        if not self.shuffle:
            return None
        return torch.Generator(device=self.device).manual_seed(_seed(self.seed, epoch, b, 7))

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        batches = self.index_batches(epoch)
        on_device = torch.cat(batches).to(self.device) if batches else None  # one copy per epoch
        for b in range(start, len(batches)):
            dev_idx = on_device[b * self.batch_size:b * self.batch_size + len(batches[b])]
            x = self.transform(self.images[dev_idx], train=self.shuffle, gen=self.batch_generator(epoch, b))
            yield {"inputs": x, "targets": self.labels[dev_idx], "index": batches[b]}

    def __iter__(self):
        return self.iterate()


class _EpochBatches:
    """A batch_sampler whose batches are set per epoch, so DataLoader workers can persist."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class FileLoader(TensorLoader):
    """The same batches as TensorLoader, decoded from files by DataLoader workers (for datasets
    too large to cache): same permutation, same augmentation generators, same pixels."""

    def __init__(self, data, batch_size: int, *, shuffle: bool, seed: int, transform: BatchTransform,
                 device: torch.device, num_workers: int = 2, drop_last: bool = False):
        self.data, self.labels = data, data.labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.transform, self.device = transform, device
        self.drop_last = drop_last and len(data) >= batch_size
        self.sampler = _EpochBatches()
        self.loader = torch.utils.data.DataLoader(
            data, batch_sampler=self.sampler, num_workers=num_workers, pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0)

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        batches = self.index_batches(epoch)[start:]
        self.sampler.batches = [b.tolist() for b in batches]
        for b, (idx, (x, y)) in enumerate(zip(batches, self.loader), start):
            x = x.to(self.device, non_blocking=True)
            x = self.transform(x, train=self.shuffle, gen=self.batch_generator(epoch, b))
            yield {"inputs": x, "targets": y.to(self.device, non_blocking=True), "index": idx}


class DatasetLoader:
    """Any map-style Dataset of (input, target) pairs, through torch's DataLoader."""

    def __init__(self, dataset, batch_size: int, *, shuffle: bool, seed: int, device: torch.device,
                 num_workers: int = 0, drop_last: bool = False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = device
        self.num_workers = num_workers
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.drop_last else len(self.dataset)

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        g = torch.Generator().manual_seed(_seed(self.seed, epoch))
        order = torch.randperm(len(self.dataset), generator=g) if self.shuffle else torch.arange(len(self.dataset))
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=[b.tolist() for b in batches[start:]],
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False)
        for b, (x, y) in zip(batches[start:], loader):
            yield {"inputs": x.to(self.device, non_blocking=True),
                   "targets": torch.as_tensor(y).to(self.device, non_blocking=True), "index": b}

    def __iter__(self):
        return self.iterate()
