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
    """Blocks of conv -> batch norm -> ReLU -> 2x2 max-pool, then a dropout MLP head (the MNIST lab's CNN)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: tuple = (28, 28),
                 channels: tuple = (32, 64), kernel_size: int = 3, convs_per_block: int = 1,
                 batch_norm: bool = True, pool: str = "max", hidden: tuple = (128,),
                 dropout: float = 0.0, global_pool: bool = False):
        super().__init__()
        pool_layer = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        blocks: list[nn.Module] = []
        c = in_channels
        for width in channels:
            for _ in range(convs_per_block):
                blocks += [nn.Conv2d(c, width, kernel_size, padding=kernel_size // 2, bias=not batch_norm)]
                blocks += [nn.BatchNorm2d(width)] if batch_norm else []
                blocks += [nn.ReLU(inplace=True)]
                c = width
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
