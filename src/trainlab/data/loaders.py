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

from .image_set import ImageSet


def _seed(*parts: int) -> int:
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


class BatchTransform:
    """uint8 [B, C, H, W] -> normalised float, with batched random crops/flips in training."""

    def __init__(self, mean, std, crop_padding: int = 0, hflip: bool = False,
                 random_resized: bool = False, rrc_scale=(0.35, 1.0), channels_last: bool = False,
                 hflip_mode: str = "random", pixel=None, erasing: float = 0.0, crop_mode: str = "zeros"):
        """``pixel``: a data.augment.PixelAugment (colour jitter, RandAugment ...) on 0..255 floats;
        ``erasing``: data.random_erasing's probability, applied after normalisation."""
        self.pixel, self.erasing = pixel, erasing
        self.pixel_group = len(mean) if pixel is None else pixel.group  # channels per frame (clips fold time in)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.crop_padding, self.crop_mode = crop_padding, crop_mode
        self.hflip = hflip
        self.hflip_mode = hflip_mode  # 'alternate': the loader passes each batch's flips
        self.random_resized = random_resized
        self.rrc_scale = tuple(rrc_scale)
        self.channels_last = channels_last
        self._stats: dict = {}  # device -> (mean, std): no host-to-device copy per batch

    @classmethod
    def from_config(cls, data_cfg, mean, std, channels_last: bool = False) -> "BatchTransform":
        from .augment import PixelAugment

        return cls(mean, std, data_cfg.crop_padding, data_cfg.hflip, data_cfg.random_resized_crop,
                   data_cfg.rrc_scale, channels_last, data_cfg.hflip_mode,
                   pixel=PixelAugment.from_config(data_cfg, group=len(mean)),
                   erasing=data_cfg.random_erasing, crop_mode=data_cfg.crop_mode)

    def __call__(self, x: torch.Tensor, train: bool, gen: Optional[torch.Generator],
                 flips: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``flips``: which images to mirror (bool [B]); default a fresh coin per image from ``gen``."""
        if train and self.crop_padding:
            x = random_crop(x, self.crop_padding, gen, self.crop_mode)
        x = x.float()
        if train and self.random_resized:
            x = random_resized_crop(x, self.rrc_scale, gen)
        if train and self.hflip:
            flip = flips if flips is not None else torch.rand(len(x), generator=gen, device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if train and self.pixel is not None:
            x = self.pixel(x, gen)
        if x.device not in self._stats:
            self._stats[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        mean, std = self._stats[x.device]
        x = (x.div_(255) - mean) / std
        if train and self.erasing:
            from .augment import random_erasing

            x = random_erasing(x, self.erasing, gen, group=self.pixel_group)
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


def random_crop(x: torch.Tensor, pad: int, gen: Optional[torch.Generator], mode: str = "zeros") -> torch.Tensor:
    """Per-sample random HxW crop of the batch padded by ``pad`` pixels (``mode`` 'zeros', or
    'reflect': mirrored at the border without repeating the edge, as airbench pads), by gathering
    indices: one gather for the whole batch, on any dtype (uint8 included)."""
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    if mode == "reflect":
        if pad >= min(h, w):
            raise ValueError(f"data.crop_padding={pad} with reflect padding needs images larger than {pad} px")
        rows, cols = _reflect(rows - pad, h), _reflect(cols - pad, w)
        return x[bi, ci, rows, cols]
    return F.pad(x, (pad, pad, pad, pad))[bi, ci, rows, cols]


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Indices -pad..n-1+pad mirrored into 0..n-1 (-1 -> 1, n -> n-2), as F.pad's 'reflect'."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


class _Batches:
    """What every loader shares: the epoch's permutation and the per-batch generator, both pure
    functions of (seed, epoch[, batch]), so a run resumed at batch k sees the same batches."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, device: torch.device, drop_last: bool):
        from ..engine.distributed import rank_world

        self.n, self.batch_size, self.shuffle, self.seed, self.device = n, batch_size, shuffle, seed, device
        self.drop_last = drop_last and n >= batch_size
        self.sample_weights: Optional[torch.Tensor] = None  # set: an epoch draws n samples with replacement
        self.mixer = None  # set (training): a data.mixing.Mixer adds soft targets to each batch
        # under torchrun every rank draws the same global batches and keeps its slice of each
        self.world = rank_world()[1]

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // self.batch_size
        full, rest = divmod(self.n, self.batch_size)
        # a training tail smaller than the world would leave a rank without samples (DDP needs all)
        return full + (rest > 0 and not (self.shuffle and rest < self.world))

    def index_batches(self, epoch: int) -> list[torch.Tensor]:
        """This rank's indices of each batch: a slice of the global batch (empty in evaluation
        when a tail batch has fewer samples than ranks; the loaders skip those)."""
        from ..engine.distributed import shard

        if self.shuffle and self.sample_weights is not None:  # class-balanced: still (seed, epoch) alone
            g = torch.Generator().manual_seed(_seed(self.seed, epoch))
            order = torch.multinomial(self.sample_weights, self.n, replacement=True, generator=g)
        elif self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(_seed(self.seed, epoch)))
        else:
            order = torch.arange(self.n)
        return [shard(order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(len(self))]

    def batch_generator(self, epoch: int, b: int) -> Optional[torch.Generator]:
        """The augmentation randomness of batch ``b``: a function of (seed, epoch, b) only, drawn on
        the training device (so the same seed gives other crops on a GPU than on the CPU)."""
        if not self.shuffle:
            return None
        return torch.Generator(device=self.device).manual_seed(_seed(self.seed, epoch, b, 7))

    def flips(self, transform: Optional[BatchTransform], idx: torch.Tensor, epoch: int) -> Optional[torch.Tensor]:
        """hflip_mode=alternate (airbench): one coin per image for the whole run, a function of
        (seed, index), inverted on odd epochs, so every image is seen both ways every two epochs.
        None (a fresh coin per image and epoch) otherwise."""
        if not self.shuffle or transform is None or not transform.hflip or transform.hflip_mode != "alternate":
            return None
        h = idx.to(torch.int64) ^ (_seed(self.seed, 11) & 0xFFFFFFFF)  # an integer hash of (seed, index)
        for _ in range(2):
            h = (((h >> 16) ^ h) * 0x45D9F3B) & 0xFFFFFFFF
        coin = (((h >> 16) ^ h) & 1).bool()
        return coin ^ bool(epoch % 2)

    def finish(self, batch: dict, epoch: int, b: int) -> dict:
        """The batch as yielded: mixed (MixUp/CutMix) when the loader has a mixer."""
        return batch if self.mixer is None else self.mixer(batch, _seed(self.seed, epoch, b, 13))

    def __iter__(self):
        return self.iterate()


class TensorLoader(_Batches):
    """Batches of a split held as tensors on ``device``; yields dicts of inputs/targets/index."""

    def __init__(self, data: ImageSet, batch_size: int, *, shuffle: bool, seed: int,
                 transform: BatchTransform, device: torch.device, drop_last: bool = False):
        super().__init__(len(data), batch_size, shuffle, seed, device, drop_last)
        self.data = data
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.transform = transform

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        batches = self.index_batches(epoch)
        on_device = torch.cat(batches).to(self.device) if batches else None  # one copy per epoch
        ends = torch.tensor([len(b) for b in batches]).cumsum(0).tolist()
        for b in range(start, len(batches)):
            if len(batches[b]) == 0:
                continue
            dev_idx = on_device[ends[b] - len(batches[b]):ends[b]]
            x = self.inputs(dev_idx, self.batch_generator(epoch, b), self.flips(self.transform, dev_idx, epoch))
            yield self.finish({"inputs": x, "targets": self.labels[dev_idx], "index": batches[b]}, epoch, b)

    def inputs(self, idx: torch.Tensor, gen: Optional[torch.Generator],
               flips: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The batch's model inputs from its sample indices (on the device); subclasses pick frames."""
        return self.transform(self.images[idx], train=self.shuffle, gen=gen, flips=flips)


def sample_inputs(loader, n: int, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` model inputs of a training loader, for data-dependent initialisation: a seeded
    random subset without augmentation where the split is held as tensors, else the first batches
    of epoch 0 (as training will see them)."""
    if isinstance(loader, TensorLoader) and type(loader).inputs is TensorLoader.inputs:
        pick = torch.randperm(len(loader.images), generator=torch.Generator().manual_seed(seed))[:n]
        return loader.transform(loader.images[pick.to(loader.images.device)], train=False, gen=None)
    xs, got = [], 0
    for batch in loader.iterate(0):
        xs.append(batch["inputs"])
        got += len(batch["inputs"])
        if got >= n:
            break
    return torch.cat(xs)[:n]


class _EpochBatches:
    """A batch_sampler whose batches are set per epoch, so DataLoader workers can persist."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class DatasetLoader(_Batches):
    """Any map-style Dataset of (input, target) pairs through torch's DataLoader (workers, pinned
    memory, persistent workers), batched exactly like TensorLoader. With a ``transform`` the
    inputs are uint8 images augmented per batch on the device, which makes it the file-backed
    twin of TensorLoader: same permutation, same generators, same pixels."""

    def __init__(self, dataset, batch_size: int, *, shuffle: bool, seed: int, device: torch.device,
                 transform: Optional[BatchTransform] = None, num_workers: int = 0, drop_last: bool = False):
        super().__init__(len(dataset), batch_size, shuffle, seed, device, drop_last)
        self.dataset, self.transform = dataset, transform
        self.sampler = _EpochBatches()
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=num_workers, pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0)

    def iterate(self, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        numbered = [(b, idx) for b, idx in enumerate(self.index_batches(epoch)) if b >= start and len(idx)]
        self.sampler.batches = [idx.tolist() for _, idx in numbered]
        for (b, idx), (x, y) in zip(numbered, self.loader):
            x = x.to(self.device, non_blocking=True)
            if self.transform is not None:
                x = self.transform(x, train=self.shuffle, gen=self.batch_generator(epoch, b),
                                   flips=self.flips(self.transform, idx.to(self.device), epoch))
            y = torch.as_tensor(y).to(self.device, non_blocking=True)
            yield self.finish({"inputs": x, "targets": y, "index": idx}, epoch, b)
