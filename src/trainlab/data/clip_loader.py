"""Clips in batches: frames sampled per batch on the device from the cached frames.

``frame_indices`` splits each clip's cached frames into ``frames`` equal segments and takes one
frame per segment: a random one in training (drawn from the batch's seeded generator, so a
resumed run samples the same frames), the middle one in evaluation (fixed). Augmentation folds
time into the channels, so a random crop or flip is the same for every frame of a clip: motion
is kept, only the view changes.
"""

from __future__ import annotations

from typing import Optional

import torch

from .loaders import BatchTransform, TensorLoader


def frame_indices(lengths: torch.Tensor, frames: int, gen: Optional[torch.Generator]) -> torch.Tensor:
    """[B] clip lengths -> [B, frames] indices, increasing, each in its segment and < length."""
    b = len(lengths)
    if gen is None:
        offset = torch.full((b, frames), 0.5, device=lengths.device)
    else:
        offset = torch.rand((b, frames), generator=gen, device=lengths.device)
    segment = lengths.float().view(b, 1) / frames
    idx = ((torch.arange(frames, device=lengths.device).view(1, frames) + offset) * segment).long()
    return torch.minimum(idx, (lengths - 1).view(b, 1))


class ClipTransform(BatchTransform):
    """uint8 [B, T, C, H, W] -> normalised float; one random crop/flip per clip (time folded into channels)."""

    def __init__(self, mean, std, frames: int, **kw):
        super().__init__(list(mean) * frames, list(std) * frames, **kw)
        self.pixel_group = len(mean)  # channels per frame: erasing boxes and noise are the same in every frame

    @classmethod
    def from_config(cls, data_cfg, mean, std, channels_last: bool = False, frames: int = 1) -> "ClipTransform":
        """data's crops, flips and per-clip augmentation (the same op for every frame of a clip)."""
        from .augment import PixelAugment

        return cls(mean, std, frames, crop_padding=data_cfg.crop_padding, hflip=data_cfg.hflip,
                   random_resized=data_cfg.random_resized_crop, rrc_scale=data_cfg.rrc_scale,
                   hflip_mode=data_cfg.hflip_mode, pixel=PixelAugment.from_config(data_cfg, group=len(mean)),
                   erasing=data_cfg.random_erasing, crop_mode=data_cfg.crop_mode)

    def __call__(self, x: torch.Tensor, train: bool, gen: Optional[torch.Generator],
                 flips: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t, c, h, w = x.shape
        return super().__call__(x.reshape(b, t * c, h, w), train, gen, flips).view(b, t, c, h, w)


class ClipLoader(TensorLoader):
    """A ClipSet's cached frames on the device; yields {'inputs': [B, T, C, H, W], 'targets', 'index'}."""

    def __init__(self, data, batch_size: int, **kw):
        super().__init__(data, batch_size, **kw)
        self.lengths = data.lengths.to(self.device)
        self.frames = data.frames

    def inputs(self, idx: torch.Tensor, gen: Optional[torch.Generator],
               flips: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = frame_indices(self.lengths[idx], self.frames, gen)  # [B, T]
        return self.transform(self.images[idx.view(-1, 1), t], train=self.shuffle, gen=gen, flips=flips)
