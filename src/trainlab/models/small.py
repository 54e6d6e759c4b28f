"""Networks for small images (32-64 px): a small ViT, VGG without the 224-px classifier, and a
BiLSTM that reads an image row by row."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS
from .zoo import set_in_channels

_VGG_CFG = {11: "A", 13: "B", 16: "D", 19: "E"}


@MODELS.register("vit_small")
def vit_small(num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), patch_size: int = 4,
              depth: int = 6, width: int = 192, heads: int = 3, mlp_ratio: float = 2.0, dropout: float = 0.0):
    """A small Vision Transformer (torchvision's implementation) for 32-64 px images."""
    from torchvision.models.vision_transformer import VisionTransformer

    if input_size[0] != input_size[1]:
        raise ValueError(f"vit_small needs square images, got {tuple(input_size)}")
    model = VisionTransformer(image_size=int(input_size[0]), patch_size=patch_size, num_layers=depth,
                              num_heads=heads, hidden_dim=width, mlp_dim=int(width * mlp_ratio),
                              dropout=dropout, num_classes=num_classes)
    set_in_channels(model, in_channels)
    return model


@MODELS.register("vgg_small")
class VGGSmall(nn.Module):
    """VGG-11/13/16/19 convolutions with a global-pool head sized for 32-64 px inputs."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), depth: int = 16,
                 batch_norm: bool = True, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        if depth not in _VGG_CFG:
            raise ValueError(f"vgg_small depth must be one of {sorted(_VGG_CFG)}, got {depth}")
        self.features = make_layers(cfgs[_VGG_CFG[depth]], batch_norm=batch_norm)  # [B, 512, H/32, W/32]
        set_in_channels(self.features, in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)                                         # [B, 512, 1, 1]
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, hidden), nn.ReLU(inplace=True),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.classifier(self.pool(self.features(x)))


@MODELS.register("bilstm_rows")
class BiLSTMRows(nn.Module):
    """Reads an image row by row (rows are time steps, channels x width the features) and
    classifies from the final state of each direction."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size=(32, 32), hidden: int = 128,
                 layers: int = 2, bidirectional: bool = True, dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(in_channels * int(input_size[1]), hidden, num_layers=layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # [B, H, C*W]
        _, (h_n, _) = self.lstm(rows)                      # [layers * directions, B, hidden]
        last = h_n[-2:] if self.lstm.bidirectional else h_n[-1:]
        return self.head(torch.cat(list(last), dim=1))     # [B, hidden * directions] -> [B, classes]
