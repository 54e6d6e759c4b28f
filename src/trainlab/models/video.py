"""Video classifiers: inputs are clips [B, T, C, H, W], outputs logits [B, num_classes].

``cnn_lstm``: a frame encoder (``cnn4``, the classic lab's 4-block CNN, or any registered image
model such as resnet18) maps each frame to ``latent_dim`` features, an LSTM reads them in time
order, and a linear head classifies the last state or the mean over steps. ``r3d_18`` and the
other torchvision video models take the clip whole as a 3D-CNN comparison.

``takes_clips`` tells the video task to pass the clip whole (an image model instead sees every
frame). ``finetune_target`` names the part that ``model.weights`` (an image checkpoint) and
``model.freeze=backbone`` apply to.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import MODELS
from .build import build_model


@MODELS.register("cnn4")
class CNN4(nn.Module):
    """The classic lab's frame encoder: 4 x (3x3 conv, ReLU, 2x2 max-pool), then one linear layer."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size=(64, 64),
                 channels=(16, 32, 64, 64), batch_norm: bool = False):
        super().__init__()
        if len(channels) != 4:
            raise ConfigError(f"cnn4 takes 4 channel widths, got {list(channels)}")
        layers, c = [], in_channels
        for width in channels:
            layers += [nn.Conv2d(c, width, 3, padding=1), *([nn.BatchNorm2d(width)] if batch_norm else []),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = width
        self.features = nn.Sequential(*layers)                          # [B, C, H, W] -> [B, c4, H/16, W/16]
        h, w = int(input_size[0]) // 16, int(input_size[1]) // 16
        if h < 1 or w < 1:
            raise ConfigError(f"cnn4 needs inputs of at least 16x16, got {tuple(input_size)}")
        self.fc = nn.Linear(c * h * w, num_classes)                     # [B, c4*h*w] -> [B, num_classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


def _last_state(out: torch.Tensor, h_n: torch.Tensor, directions: int) -> torch.Tensor:
    """The top layer's final hidden state of each direction (the backward one has read the whole clip)."""
    return torch.cat(list(h_n[-directions:]), dim=1)                    # [B, hidden * directions]


def _mean_over_steps(out: torch.Tensor, h_n: torch.Tensor, directions: int) -> torch.Tensor:
    return out.mean(1)                                                  # [B, T, hidden * dirs] -> [B, ...]


POOLING = {"last": _last_state, "mean": _mean_over_steps}


@MODELS.register("cnn_lstm")
class CNNLSTM(nn.Module):
    """Frame encoder (cnn4 or any image model) -> LSTM over time -> linear head on the last step or the mean."""

    takes_clips = True
    finetune_target = "encoder"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size=(64, 64), encoder: str = "cnn4",
                 encoder_args: dict | None = None, latent_dim: int = 128, hidden_size: int = 128,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, pooling: str = "last",
                 pretrained: bool = False):
        super().__init__()
        if pooling not in POOLING:
            raise ConfigError(f"model.init_args.pooling={pooling!r} must be one of {', '.join(POOLING)}")
        self.pooling = pooling
        enc_cfg = ModelConfig(name=encoder, init_args=dict(encoder_args or {}), pretrained=pretrained)
        self.encoder = build_model(enc_cfg, inferred={"num_classes": latent_dim, "in_channels": in_channels,
                                                      "input_size": list(input_size)})
        self.lstm = nn.LSTM(latent_dim, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                # [B, T, C, H, W]
        b, t = x.shape[:2]
        z = self.encoder(x.flatten(0, 1)).view(b, t, -1)               # time folded into the batch -> [B, T, latent]
        out, (h_n, _) = self.lstm(z)                                    # [B, T, hidden * dirs]
        feat = POOLING[self.pooling](out, h_n, 2 if self.lstm.bidirectional else 1)
        return self.head(self.dropout(feat))                            # [B, num_classes] logits


class Video3D(nn.Module):
    """A torchvision video model on trainlab's [B, T, C, H, W] clips (it wants [B, C, T, H, W], RGB)."""

    takes_clips = True

    def __init__(self, name: str, num_classes: int, in_channels: int, pretrained: bool):
        super().__init__()
        import torchvision

        if in_channels not in (1, 3):
            raise ConfigError(f"{name} takes 1 (repeated to RGB) or 3 channels, not {in_channels}")
        if pretrained:
            from .zoo import _download_pretrained, set_num_classes

            self.net = _download_pretrained(name)
            set_num_classes(self.net, num_classes)
        else:
            self.net = torchvision.models.get_model(name, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                # [B, T, C, H, W]
        x = x.transpose(1, 2)                                           # [B, C, T, H, W]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1, -1)                             # grey frames: the same value in R, G, B
        return self.net(x)                                              # [B, num_classes]


VIDEO_NAMES = ["r3d_18", "mc3_18", "r2plus1d_18", "s3d"]


def _video_factory(name: str):
    def factory(num_classes: int = 400, in_channels: int = 3, pretrained: bool = False):
        return Video3D(name, num_classes, in_channels, pretrained)

    factory.__name__ = name
    factory.__doc__ = f"torchvision 3D CNN {name} on clips (grey frames repeated to RGB)"
    factory.takes_clips = True  # the registry lists it among the clip models
    return factory


for _name in VIDEO_NAMES:
    MODELS.register(_name)(_video_factory(_name))
