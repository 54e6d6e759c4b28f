"""Where an image model looks: class activation maps and gradient saliency for images and clips.

The class map is LayerCAM (Jiang et al. 2021), the Grad-CAM variant that also works below the last
stage: each cell of a feature map A is weighted by the positive part of the explained class score's
gradient at that cell, ``relu(sum_k relu(dS/dA_k) * A_k)``, where Grad-CAM weighs a whole channel by its
gradient averaged over the map. Both are read from a layer whose cells see only part of the image
(``explain_layer.choose_layer``: by measured receptive field, at most half the input's side), so no
model needs a table entry: convnet, lenet5, speednet, cifar_resnet, torchvision ResNets and VGGs,
cnn_lstm's frame encoder (a map per frame) and 3D CNNs (a space-time map). A Vision Transformer's map is
Integrated Gradients at its patch embedding (``layer_ig``), which localised where LayerCAM there and the
attention rollout (``explain_vit``, ``method="rollout"``) did not (docs/explain.md). Why not
Grad-CAM at the last convolution: on synthetic images whose class is decided by one quadrant (see
tests/test_explain.py and docs/explain.md) that choice gave 0.07 of the map's mass in the deciding
quadrant for a ResNet-18 at 64 px and 0.37 for cifar_resnet; Grad-CAM's channel averages at a shallower
layer did not fix it either (cnn4's flatten-and-linear head has position-specific weights that an
average erases). Saliency (captum's ``Saliency``) is the absolute gradient of the class score per input
pixel, the maximum over channels. Every map is returned at input resolution, scaled to [0, 1] per sample.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .explain_layer import choose_layer, vit_of
from .explain_vit import vit_rollout


LAYERCAM = "LayerCAM, of the Grad-CAM family"
ROLLOUT = "gradient-weighted attention rollout, Chefer et al. 2021"
IG = "Integrated Gradients at the map's layer, captum"
# explain(method=...): "auto" is LayerCAM, and for a Vision Transformer Integrated Gradients at its patch
# embedding, the method measured to localise there (docs/explain.md); "rollout" is for ViTs only
METHODS = {"auto": None, "layercam": LAYERCAM, "ig": IG, "rollout": ROLLOUT}
IG_STEPS = 16  # the quadrant shares did not change from 16 to 32 steps (docs/explain.md)


@dataclass
class Maps:
    """Per sample: predicted class and probability, the explained class, and the maps at input size
    ([N, H, W] for images, [N, T, H, W] for clips); ``layer`` names where the class map was read."""

    pred: torch.Tensor
    prob: torch.Tensor
    target: torch.Tensor
    gradcam: torch.Tensor
    saliency: torch.Tensor
    layer: str
    method: str = LAYERCAM


def _scale(maps: torch.Tensor) -> torch.Tensor:
    """Each sample's map to [0, 1], its minimum to 0 and its maximum to 1 (a constant map becomes 0)."""
    flat = maps.flatten(1)
    lo = flat.min(1).values.view(-1, *[1] * (maps.dim() - 1))
    hi = flat.max(1).values.view(-1, *[1] * (maps.dim() - 1))
    return ((maps - lo) / (hi - lo).clamp(min=1e-12)).clamp(0, 1)


def _resize(cam: torch.Tensor, x: torch.Tensor, clip: bool, patches: bool = False) -> torch.Tensor:
    """Grad-CAM's [N(*T), 1, h, w] or [N, 1, t, h, w] -> [N, H, W] or [N, T, H, W]. ``patches``: a ViT's
    patch grid, each patch drawn as one block (nearest), since its value belongs to that patch alone."""
    h, w = x.shape[-2:]
    if cam.dim() == 5:  # a 3D CNN: time too
        return F.interpolate(cam, size=(x.shape[1], h, w), mode="trilinear", align_corners=False)[:, 0]
    up = F.interpolate(cam, size=(h, w), mode="nearest")[:, 0] if patches else \
        F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return up.view(x.shape[0], x.shape[1], h, w) if clip else up


def layercam(forward, layer: nn.Module, x: torch.Tensor, target: torch.Tensor | None):
    """(logits, map [N', 1, (t,) h, w] at ``layer``'s resolution) for inputs ``x``; ``target`` None: the
    predicted classes."""
    got = []

    def hook(mod, inp, out):
        got.append(out)
        return out.clone()  # later in-place ops (ReLU(inplace=True)) change the copy, not the saved map

    handle = layer.register_forward_hook(hook)
    try:
        logits = forward(x.clone().requires_grad_(True))
    finally:
        handle.remove()
    act = got[0]
    tb = logits.argmax(1) if target is None else target.to(logits.device)
    (grad,) = torch.autograd.grad(logits.gather(1, tb.view(-1, 1)).sum(), act)
    cam = (grad.clamp(min=0) * act).sum(1, keepdim=True).clamp(min=0)
    return logits.detach(), tb, cam.detach().float()


def layer_ig(forward, layer: nn.Module, x: torch.Tensor, target: torch.Tensor | None):
    """Like ``layercam``, but the map is captum's Integrated Gradients of the class score at ``layer``
    (from the all-zero input, the data's mean after normalisation), summed over channels and kept where
    positive: each cell's share of the score's rise from the baseline."""
    from captum.attr import LayerIntegratedGradients

    def guarded(v):
        # registered after captum's own hook on ``layer``, so it runs last and hands on a copy of captum's
        # tensor: later in-place ops (ReLU(inplace=True), ``out += identity``) change the copy, as in layercam
        handle = layer.register_forward_hook(lambda mod, inp, out: out.clone())
        try:
            return forward(v)
        finally:
            handle.remove()

    with torch.no_grad():
        logits = forward(x)
    tb = logits.argmax(1) if target is None else target.to(logits.device)
    with warnings.catch_warnings():  # a frame encoder's layer has N*T rows: captum then batches N*T (same result)
        warnings.filterwarnings("ignore", message="Internal batch size cannot be less than")
        attr = LayerIntegratedGradients(guarded, layer).attribute(x, target=tb, n_steps=IG_STEPS,
                                                                  internal_batch_size=len(x))
    return logits, tb, attr.detach().float().sum(1, keepdim=True).clamp(min=0)


def _method(method: str, vit) -> str:
    if method not in METHODS:
        raise ConfigError(f"explain method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "rollout" and vit is None:
        raise ConfigError("explain method 'rollout' follows a Vision Transformer's attention: this model has none")
    return METHODS[method] or (IG if vit is not None else LAYERCAM)


def explain(model: nn.Module, x: torch.Tensor, forward=None, target: torch.Tensor | None = None,
            batch_size: int = 16, method: str = "auto") -> Maps:
    """Maps for the inputs ``x`` ([N, C, H, W] images or [N, T, C, H, W] clips, normalised as in training).
    ``forward``: inputs -> logits (default ``model``); ``target``: the classes to explain (default the
    predicted ones); ``method``: a key of METHODS."""
    from captum.attr import Saliency

    forward = forward or model
    model.eval()
    clip = x.dim() == 5
    vit = vit_of(model)
    method = _method(method, vit)
    draw = {LAYERCAM: layercam, IG: layer_ig}.get(method)
    if draw is not None:
        name, layer, share = choose_layer(model, forward, x)
    out = {k: [] for k in ("pred", "prob", "target", "gradcam", "saliency")}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        tb = None if target is None else target[i:i + batch_size]
        logits, tb, cam = draw(forward, layer, xb, tb) if draw is not None else vit_rollout(vit, forward, xb, tb)
        conf, pred = logits.float().softmax(1).max(1)
        sal = Saliency(forward).attribute(xb.clone().requires_grad_(True), target=tb, abs=True)
        out["gradcam"].append(_scale(_resize(cam, xb, clip, patches=vit is not None)))
        out["saliency"].append(_scale(sal.detach().float().amax(dim=-3)))
        out["pred"].append(pred)
        out["prob"].append(conf)
        out["target"].append(tb)
    grid = "x".join(str(v) for v in cam.shape[2:])
    where = (f"{name} ({grid} cells, each seeing {share:.0%} of the input's side)" if draw is not None else
             f"the attention of {len(vit.encoder.layers)} encoder blocks ({grid} patches)")
    return Maps(**{k: torch.cat(v) for k, v in out.items()}, layer=where, method=method)


def quadrant_mass(cam: torch.Tensor, quadrant: int) -> torch.Tensor:
    """The share of each map's total inside a quadrant (0 top-left, 1 top-right, 2 bottom-left, 3
    bottom-right): [N, H, W] -> [N]."""
    h, w = cam.shape[-2] // 2, cam.shape[-1] // 2
    r, c = divmod(quadrant, 2)
    part = cam[..., r * h:(r + 1) * h, c * w:(c + 1) * w]
    return part.flatten(1).sum(1) / cam.flatten(1).sum(1).clamp(min=1e-12)
