"""Multi-layer perceptron over flattened images."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import MODELS


@MODELS.register("mlp")
class MLP(nn.Module):
    """Flattened pixels through fully connected layers (widths) with ReLU and dropout."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: tuple = (28, 28),
                 widths: tuple = (512, 256), dropout: float = 0.2, batch_norm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * math.prod(input_size)
        for w in widths:
            layers += [nn.Linear(width, w)]
            layers += [nn.BatchNorm1d(w)] if batch_norm else []
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = w
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.net(x)
