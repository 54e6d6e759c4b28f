"""The small fast CIFAR net of the speed records (after Keller Jordan's airbench, 2024).

A 2x2 patch stem, then three groups of [conv 3x3, max-pool 2, BN, GELU, conv 3x3, BN, GELU] (or ReLU),
a global max-pool and a bias-free linear head whose logits are scaled down (``head_scale``),
which, with label smoothing, keeps the early large-LR steps stable. It reaches about 94% on
CIFAR-10 at widths 64/256/256 on a GPU in ten epochs; the CPU speed recipe uses 32/128/128,
a quarter of the compute. Batch-norm layers learn only their shift (``affine_scale=False``)
and use a fast-moving running average, since a speedrun is only a few hundred steps long.

Two initialisations of airbench, both on by default:

- ``identity_init``: each 3x3 convolution starts as the identity on its first ``cin`` output
  channels (``nn.init.dirac_``), an implicit residual path through the net.
- ``whiten``: the 2x2 stem is set from the training data before the first step
  (``init_from_data``, which trainlab calls with a sample of normalised training images): its
  filters are the eigenvectors of the 2x2 patch covariance scaled by 1/sqrt(eigenvalue), and their
  negatives, so the stem whitens the patches. These weights are then frozen; the stem's bias trains.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import MODELS


def _bn(c: int, affine_scale: bool, momentum: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, momentum=momentum, eps=1e-12)
    if not affine_scale:
        bn.weight.requires_grad_(False)  # stays 1: only the shift is learned
    return bn


ACTIVATIONS = {"gelu": nn.GELU, "relu": lambda: nn.ReLU(inplace=True)}


class ConvGroup(nn.Module):
    def __init__(self, cin: int, cout: int, affine_scale: bool, momentum: float, activation: str = "gelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = _bn(cout, affine_scale, momentum)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = _bn(cout, affine_scale, momentum)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, cin, H, W] -> [B, cout, H/2, W/2]
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


def patch_whitening(x: torch.Tensor, k: int, eps: float = 5e-4) -> torch.Tensor:
    """Conv weights [2*C*k*k, C, k, k] that whiten the k x k patches of images ``x`` [N, C, H, W]:
    the covariance's eigenvectors scaled by 1/sqrt(eigenvalue + eps), largest first, then their negatives."""
    c = x.shape[1]
    patches = x.float().unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    w = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps).view(-1, 1)).flip(0).reshape(-1, c, k, k)
    return torch.cat([w, -w])


@MODELS.register("speednet")
class SpeedNet(nn.Module):
    """airbench's fast CIFAR-10 net: a whitened 2x2 stem, three conv groups with pooling, a scaled linear head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: tuple = (32, 128, 128),
                 stem_width: int | None = None, head_scale: float = 1 / 9, affine_scale: bool = False,
                 bn_momentum: float = 0.6, identity_init: bool = True, whiten: bool = True,
                 activation: str = "gelu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"speednet: activation={activation!r} is not one of {', '.join(ACTIVATIONS)}")
        k = 2
        stem_width = stem_width or 2 * in_channels * k * k  # whitening needs exactly 2 * C * k * k filters
        if whiten and stem_width != 2 * in_channels * k * k:
            raise ValueError(f"speednet: whiten=True needs stem_width={2 * in_channels * k * k} "
                             f"(2 x channels x 2 x 2), got {stem_width}")
        self.whiten = whiten
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, k, bias=True), ACTIVATIONS[activation]())  # [B, s, H-1, W-1]
        groups, c = [], stem_width
        for w in widths:
            groups.append(ConvGroup(c, w, affine_scale, bn_momentum, activation))
            c = w
        self.groups = nn.Sequential(*groups)            # [B, widths[-1], ~H/8, ~W/8]
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.head_scale = head_scale
        if identity_init:
            for g in groups:
                for conv in (g.conv1, g.conv2):
                    nn.init.dirac_(conv.weight.data[:conv.in_channels])
        if whiten:
            self.stem[0].weight.requires_grad_(False)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the whitening stem from normalised training images ``x`` [N, C, H, W] (a few thousand)."""
        if self.whiten:
            conv = self.stem[0]
            conv.weight.copy_(patch_whitening(x.to(conv.weight.device), conv.kernel_size[0]))
            conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, num_classes]
        return self.head(self.pool(self.groups(self.stem(x))).flatten(1)) * self.head_scale
