from __future__ import annotations

import torch
from torch import nn


def flat_features(features: nn.Module, in_channels: int, input_size) -> int:
    """Width of ``features``' flattened output for one input, found by a dry forward pass."""
    with torch.no_grad():
        was = features.training
        features.eval()
        n = features(torch.zeros(1, in_channels, *input_size)).numel()
        features.train(was)
    return n
