"""Configurable CNN: conv blocks (conv, optional batch norm, ReLU, pool) then linear layers.

The classic MNIST net of the labs (2 conv + 3 linear) is
``channels=[32, 64], hidden=[128, 64]``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from ._shapes import flat_features


@MODELS.register("convnet")
class ConvNet(nn.Module):
    """Blocks of conv -> batch norm -> ReLU -> 2x2 max-pool, then a dropout MLP head (the MNIST lab's CNN).

    ``stem_stride=s`` > 1 makes the first convolution (kernel ``stem_kernel``) stride ``s`` and
    drops the first block's pool: the full-resolution activations, whose memory-bound batch norm,
    ReLU and pool dominated the step of a small net on a CPU, are never made. ``pool_first=True`` pools right after each block's
    last convolution (airbench's order), so its batch norm and ReLU run on a quarter of the pixels.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: tuple = (28, 28),
                 channels: tuple = (32, 64), kernel_size: int = 3, convs_per_block: int = 1,
                 batch_norm: bool = True, pool: str = "max", hidden: tuple = (128,),
                 dropout: float = 0.0, global_pool: bool = False, stem_stride: int = 1,
                 stem_kernel: int | None = None, pool_first: bool = False):
        super().__init__()
        if stem_stride < 1:
            raise ValueError(f"convnet stem_stride={stem_stride}: must be a positive integer")
        pool_layer = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        blocks: list[nn.Module] = []
        c = in_channels
        for i, width in enumerate(channels):
            pooled = not (i == 0 and stem_stride > 1)
            for j in range(convs_per_block):
                stride, k = (stem_stride, stem_kernel or kernel_size) if i == j == 0 else (1, kernel_size)
                blocks += [nn.Conv2d(c, width, k, stride=stride, padding=k // 2, bias=not batch_norm)]
                if pooled and pool_first and j == convs_per_block - 1:
                    blocks.append(pool_layer(2))
                blocks += [nn.BatchNorm2d(width)] if batch_norm else []
                blocks += [nn.ReLU(inplace=True)]
                c = width
            if pooled and not pool_first:
                blocks.append(pool_layer(2))  # halves H and W
        if global_pool:
            blocks.append(nn.AdaptiveAvgPool2d(1))  # [B, C, 1, 1]
        blocks.append(nn.Flatten())
        self.features = nn.Sequential(*blocks)
        n = flat_features(self.features, in_channels, input_size)
        head: list[nn.Module] = []
        for width in hidden:
            head += [nn.Linear(n, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            n = width
        head.append(nn.Linear(n, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.classifier(self.features(x))
