"""The CIFAR ResNets of He et al. 2016 (ResNet-20/32/44/56/110): 3 stages of 3x3 basic blocks at
16/32/64 channels (times ``width``), for 32x32 inputs. Cheap enough to train on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:  # projection shortcut (option B)
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


@MODELS.register("cifar_resnet")
class CifarResNet(nn.Module):
    """depth = 6n + 2 (20, 32, 44, 56, 110); ``width`` multiplies the 16/32/64 channels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, depth: int = 20, width: int = 1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"cifar_resnet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))  # [B, 16w, H, W]
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)                                        # [B, 64w, H/4, W/4]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))
