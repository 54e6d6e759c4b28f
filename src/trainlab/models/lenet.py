"""LeNet-5 (LeCun et al. 1998), adapted to any input size and channel count."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from ._shapes import flat_features


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """LeCun's LeNet-5: two 5x5 conv + pool stages and three fully connected layers (tanh by default)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: tuple = (28, 28),
                 activation: str = "tanh"):
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        # 28x28 digits are padded to the 32x32 field the original network expects.
        pad = 2 if min(input_size) < 32 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), act(), nn.AvgPool2d(2),  # [B, 6, H/2, W/2]
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2),                         # [B, 16, ., .]
            nn.Flatten(),
        )
        n = flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(
            nn.Linear(n, 120), act(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.classifier(self.features(x))
