"""Where an image model looks: Grad-CAM and gradient saliency maps (captum) for images and clips.

Grad-CAM (captum's ``LayerGradCam``) weighs the last spatial feature map of the network by the
gradient of the explained class: the layer is found by running the model once and taking the
last module (in the order they finish) whose output still has a spatial grid (more than one
cell; adaptive pools excluded), so convnet, lenet5, speednet, cifar_resnet, torchvision
ResNets/VGGs and clip models (cnn_lstm's frame encoder, the 3D CNNs) need no per-model table.
A Vision Transformer has no grid: the patch tokens of its last encoder block are reshaped to
the patch grid (the class token dropped) and Grad-CAM runs on that. Saliency (captum's
``Saliency``) is the absolute gradient of the class score per input pixel, the maximum over
channels. Every map is returned at input resolution, scaled to [0, 1] per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

_SKIP = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d, nn.Identity,
         nn.Flatten, nn.Dropout)


@dataclass
class Maps:
    """Per sample: predicted class and probability, the explained class, and the maps at input size
    ([N, H, W] for images, [N, T, H, W] for clips)."""

    pred: torch.Tensor
    prob: torch.Tensor
    target: torch.Tensor
    gradcam: torch.Tensor
    saliency: torch.Tensor
    layer: str


def _vit(model: nn.Module):
    """The torchvision VisionTransformer inside ``model`` (vit_b_16, vit_small), or None."""
    from torchvision.models.vision_transformer import VisionTransformer

    return next((m for m in model.modules() if isinstance(m, VisionTransformer)), None)


def find_layer(model: nn.Module, forward, x: torch.Tensor) -> tuple[str, nn.Module]:
    """The last module to finish whose output is a feature map with more than one spatial cell."""
    done: list[tuple[str, nn.Module]] = []
    hooks = []
    for name, m in model.named_modules():
        if name and not isinstance(m, _SKIP):
            def hook(mod, inp, out, name=name):
                if isinstance(out, torch.Tensor) and out.dim() in (4, 5) and math.prod(out.shape[2:]) > 1:
                    done.append((name, mod))
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            forward(x[:1])
    finally:
        for h in hooks:
            h.remove()
    if not done:
        raise ConfigError(f"{type(model).__name__} has no spatial feature map (no conv layer before its head): "
                          f"Grad-CAM needs one; saliency works for any model (--method saliency)")
    return done[-1]


class _PatchGrid(nn.Module):
    """An identity over the patch grid [B, D, h, w]: captum's layer for a ViT's tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _vit_probe(vit) -> tuple[nn.Module, object]:
    """(the grid module, the hook handle): the tokens [B, 1+N, D] entering the last encoder block pass
    through the grid module as [B, D, sqrt N, sqrt N] and back, so Grad-CAM sees the patches as a feature
    map. (The block's input, not its output: after the last block only the class token reaches the head.)"""
    probe = _PatchGrid()

    def hook(mod, args):
        tokens = args[0]
        b, n, d = tokens.shape
        side = int(math.isqrt(n - 1))
        grid = probe(tokens[:, 1:].transpose(1, 2).reshape(b, d, side, side))
        return (torch.cat([tokens[:, :1], grid.flatten(2).transpose(1, 2)], dim=1), *args[1:])

    return probe, vit.encoder.layers[-1].register_forward_pre_hook(hook)


def _scale(maps: torch.Tensor) -> torch.Tensor:
    """Each sample's map to [0, 1], its minimum to 0 and its maximum to 1 (a constant map becomes 0)."""
    flat = maps.flatten(1)
    lo = flat.min(1).values.view(-1, *[1] * (maps.dim() - 1))
    hi = flat.max(1).values.view(-1, *[1] * (maps.dim() - 1))
    return ((maps - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)


def _resize(cam: torch.Tensor, x: torch.Tensor, clip: bool) -> torch.Tensor:
    """Grad-CAM's [N(*T), 1, h, w] or [N, 1, t, h, w] -> [N, H, W] or [N, T, H, W]."""
    h, w = x.shape[-2:]
    if cam.dim() == 5:  # a 3D CNN: time too
        return F.interpolate(cam, size=(x.shape[1], h, w), mode="trilinear", align_corners=False)[:, 0]
    up = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return up.view(x.shape[0], x.shape[1], h, w) if clip else up


def explain(model: nn.Module, x: torch.Tensor, forward=None, target: torch.Tensor | None = None,
            batch_size: int = 16) -> Maps:
    """Maps for the inputs ``x`` ([N, C, H, W] images or [N, T, C, H, W] clips, normalised as in training).
    ``forward``: inputs -> logits (default ``model``); ``target``: the classes to explain (default the
    predicted ones)."""
    from captum.attr import LayerGradCam, Saliency

    forward = forward or model
    model.eval()
    clip = x.dim() == 5
    vit = _vit(model)
    handle = None
    try:
        if vit is not None:
            probe, handle = _vit_probe(vit)
            layer, name = probe, "patch grid entering the last encoder block"
        else:
            name, layer = find_layer(model, forward, x)
        out = {k: [] for k in ("pred", "prob", "target", "gradcam", "saliency")}
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            with torch.no_grad():
                p = forward(xb).float().softmax(1)
            conf, pred = p.max(1)
            tb = pred if target is None else target[i:i + batch_size].to(pred.device)
            cam = LayerGradCam(forward, layer).attribute(xb, target=tb, relu_attributions=True)
            sal = Saliency(forward).attribute(xb.clone().requires_grad_(True), target=tb, abs=True)
            out["gradcam"].append(_scale(_resize(cam.detach().float(), xb, clip)))
            out["saliency"].append(_scale(sal.detach().float().amax(dim=-3)))
            out["pred"].append(pred)
            out["prob"].append(conf)
            out["target"].append(tb)
    finally:
        if handle is not None:
            handle.remove()
    return Maps(**{k: torch.cat(v) for k, v in out.items()}, layer=name)


def quadrant_mass(cam: torch.Tensor, quadrant: int) -> torch.Tensor:
    """The share of each map's total inside a quadrant (0 top-left, 1 top-right, 2 bottom-left, 3
    bottom-right): [N, H, W] -> [N]."""
    h, w = cam.shape[-2] // 2, cam.shape[-1] // 2
    r, c = divmod(quadrant, 2)
    part = cam[..., r * h:(r + 1) * h, c * w:(c + 1) * w]
    return part.flatten(1).sum(1) / cam.flatten(1).sum(1).clamp(min=1e-12)
