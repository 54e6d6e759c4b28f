"""A split of images held in memory: the one piece every image dataset and loader shares.

It lives below ``base`` (bundles, splits) and ``loaders`` (batches) so that both can import it
at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import DataError


@dataclass
class ImageSet:
    """A split held in memory. ``images``: [N, C, H, W] uint8; ``labels``: [N] int64."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: Optional[list[str]] = None  # a stable name per sample (file path or 'mnist:train:17')

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> "ImageSet":
        ids = [self.ids[i] for i in index.tolist()] if self.ids is not None else None
        return ImageSet(self.images[index], self.labels[index], ids)

    def sample_id(self, i: int) -> str:
        return self.ids[i] if self.ids is not None else str(i)
