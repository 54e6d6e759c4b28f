"""Which layer an image model's class map is read from: the deepest whose cells still see part of the image.

A class activation map can only say where the evidence lies if one cell of its feature map sees less
than the whole input. In small inputs the last convolutional stage of a deep network sees everything
(a ResNet-18's layer4 at 64 px is a 2x2 grid of cells that each see the whole image; cifar_resnet's
last stage at 32 px is 8x8, but each cell sees more than the image), so its maps cannot localise.
The layer is therefore chosen by receptive field: among the modules whose output is a spatial feature
map (run once; modules called more than once, such as a shared activation, are left out), the last to
finish whose centre cell's receptive field spans at most ``RF_SHARE`` of the input's side. The field is
measured, not looked up: the input pixels with a nonzero gradient of that cell, over four random inputs,
so any architecture works without a table. The search is a bisection over the modules in the order they
finish, as receptive fields grow along a network, then a look at the few modules before the boundary.
In a Vision Transformer the only such module is the patch embedding (``conv_proj``): attention gives every
token after it a view of the whole image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

RF_SHARE = 0.5  # a cell may see at most half the input's side: enough to tell one quadrant from another
WINDOW = 12     # modules before the bisection's boundary compared with it (a block's branches)
_SKIP = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d, nn.Identity,
         nn.Flatten, nn.Dropout)


def vit_of(model: nn.Module):
    """The torchvision VisionTransformer inside ``model`` (vit_b_16, vit_small), or None."""
    from torchvision.models.vision_transformer import VisionTransformer

    return next((m for m in model.modules() if isinstance(m, VisionTransformer)), None)


def spatial_modules(model: nn.Module, forward, x: torch.Tensor) -> list[tuple[str, nn.Module, int]]:
    """(name, module, cells of its output) of the modules whose output is a feature map
    with more than one cell, in the order they finish; each called once."""
    done: list[tuple[str, nn.Module, int]] = []
    calls: dict[int, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if name and not isinstance(m, _SKIP):
            def hook(mod, inp, out, name=name):
                calls[id(mod)] = calls.get(id(mod), 0) + 1
                if isinstance(out, torch.Tensor) and out.dim() in (4, 5) and math.prod(out.shape[2:]) > 1:
                    done.append((name, mod, math.prod(out.shape[2:])))
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(x[:1])
    finally:
        for h in hooks:
            h.remove()
    return [d for d in done if calls[id(d[1])] == 1]


def receptive_share(forward, module: nn.Module, x: torch.Tensor) -> float:
    """The largest share of the input's height or width that the centre cell of ``module``'s output sees."""
    got = []
    handle = module.register_forward_hook(lambda m, i, o: got.append(o))
    g = torch.Generator().manual_seed(0)
    z = torch.randn((4, *x.shape[1:]), generator=g).to(x.device, x.dtype).requires_grad_(True)
    try:
        forward(z)
    finally:
        handle.remove()
    out = got[0]
    cell = out[..., out.shape[-2] // 2, out.shape[-1] // 2].sum()
    if not cell.requires_grad:
        return 0.0
    (grad,) = torch.autograd.grad(cell, z, allow_unused=True)
    if grad is None:
        return 0.0
    seen = grad.abs().flatten(0, -3).sum(0) > 0  # [H, W]
    share = 0.0
    for axis, size in ((1, seen.shape[0]), (0, seen.shape[1])):
        idx = seen.any(axis).nonzero()
        if len(idx):
            share = max(share, float(idx.max() - idx.min() + 1) / size)
    return share


def choose_layer(model: nn.Module, forward, x: torch.Tensor) -> tuple[str, nn.Module, float]:
    """(name, module, receptive share) of the deepest spatial module whose cells see at most RF_SHARE of
    the input (the first spatial module if none does)."""
    found = spatial_modules(model, forward, x)
    if not found:
        raise ConfigError(f"{type(model).__name__} has no spatial feature map (no conv layer before its head): "
                          f"class activation maps need one; saliency works for any model")
    shares: dict[int, float] = {}

    def share(i: int) -> float:
        if i not in shares:
            shares[i] = receptive_share(forward, found[i][1], x)
        return shares[i]

    if share(0) > RF_SHARE:
        return (*found[0][:2], share(0))
    lo, hi = 0, len(found) - 1
    if share(hi) <= RF_SHARE:
        lo = hi
    while hi - lo > 1:  # invariant: found[lo] sees at most RF_SHARE, found[hi] more
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if share(mid) <= RF_SHARE else (lo, mid)
    # Fields grow along the main path but not inside a block: a residual block's shortcut finishes after
    # the block's convolutions with the field of the block's input. So the modules just before the
    # boundary are compared: the widest field within RF_SHARE, then the finest grid, then the last to finish.
    near = [i for i in range(max(0, lo - WINDOW), lo + 1) if share(i) <= RF_SHARE]
    best = max(near, key=lambda i: (round(share(i), 6), found[i][2], i))
    return (*found[best][:2], share(best))

