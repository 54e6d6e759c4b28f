"""Per-image random augmentation for whole batches on the device: colour jitter, RandAugment,
TrivialAugment-Wide and random erasing, with no per-sample Python.

Every image draws its own op and magnitude; an op runs once on the group of images that drew it
(an index-select, the op with per-image strengths, an index-copy), so a batch costs at most one
call per op. All draws come from the batch's generator, which is a function of (seed, epoch,
batch): the same seed gives the same pixels, and a run resumed mid-epoch sees what it would have.
Inputs are float [B, C, H, W] in 0..255 (a clip's frames folded into C: ``group`` channels per
frame, so a clip gets one op for all its frames). The ops and their magnitude ranges follow
torchvision's ``RandAugment`` and ``TrivialAugmentWide``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
OPS = ("identity", *GEOMETRIC, "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
       "autocontrast", "equalize")
BINS = 31


def magnitude_ranges(wide: bool, size: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """op -> (magnitude at bin 0, at bin 30), as torchvision's two policies define them."""
    h, w = size
    return {"shear_x": (0, 0.99 if wide else 0.3), "shear_y": (0, 0.99 if wide else 0.3),
            "translate_x": (0, 32.0 if wide else 150 / 331 * w), "translate_y": (0, 32.0 if wide else 150 / 331 * h),
            "rotate": (0, 135.0 if wide else 30.0), "brightness": (0, 0.99 if wide else 0.9),
            "color": (0, 0.99 if wide else 0.9), "contrast": (0, 0.99 if wide else 0.9),
            "sharpness": (0, 0.99 if wide else 0.9), "posterize": (8, 2 if wide else 4), "solarize": (255.0, 0.0)}


def _frames(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, T*C, H, W] -> [B, T, C, H, W] (a view)."""
    b, tc, h, w = x.shape
    return x.view(b, tc // group, group, h, w)


def _grey(v: torch.Tensor) -> torch.Tensor:
    """[B, T, C, H, W] -> luminance [B, T, 1, H, W] (ITU-R 601-2, as PIL and torchvision)."""
    if v.shape[2] == 1:
        return v
    return (0.299 * v[:, :, 0] + 0.587 * v[:, :, 1] + 0.114 * v[:, :, 2]).unsqueeze(2)


def _blend(a: torch.Tensor, b: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """b + f * (a - b) per image (f: [N]), clamped to 0..255."""
    return (b + f.view(-1, *[1] * (a.dim() - 1)) * (a - b)).clamp_(0, 255)


def _affine(x: torch.Tensor, op: str, m: torch.Tensor) -> torch.Tensor:
    """Shear, translate (pixels) or rotate (degrees) each image by its own signed magnitude; nearest
    sampling, zero fill (torchvision's defaults)."""
    n, _, h, w = x.shape
    a = torch.zeros(n, 2, 3, device=x.device)
    a[:, 0, 0] = a[:, 1, 1] = 1
    if op == "shear_x":
        a[:, 0, 1] = m * h / w  # in normalised coordinates: x_in = x_out + m * y_out (pixels)
    elif op == "shear_y":
        a[:, 1, 0] = m * w / h
    elif op == "translate_x":
        a[:, 0, 2] = -2 * m / w
    elif op == "translate_y":
        a[:, 1, 2] = -2 * m / h
    else:
        r = m * math.pi / 180
        a[:, 0, 0], a[:, 0, 1] = r.cos(), -r.sin() * h / w
        a[:, 1, 0], a[:, 1, 1] = r.sin() * w / h, r.cos()
    grid = F.affine_grid(a, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _sharpen(v: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """PIL's SHARPNESS: blend with the image smoothed by [[1,1,1],[1,5,1],[1,1,1]]/13, borders kept."""
    n, t, c, h, w = v.shape
    flat = v.reshape(-1, 1, h, w)
    k = torch.ones(1, 1, 3, 3, device=v.device)
    k[0, 0, 1, 1] = 5
    smooth = flat.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(flat, k / 13)
    return _blend(v, smooth.view_as(v), f)


def _autocontrast(v: torch.Tensor) -> torch.Tensor:
    lo = v.amin(dim=(-2, -1), keepdim=True)
    hi = v.amax(dim=(-2, -1), keepdim=True)
    scale = torch.where(hi > lo, 255 / (hi - lo).clamp_min(1e-6), torch.ones_like(hi))
    return torch.where(hi > lo, (v - lo) * scale, v).clamp_(0, 255)


def _equalize(v: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel, for the whole group at once (a histogram by
    scatter_add, the cumulative lookup table, a gather): torchvision's batched equalize is ~100x slower
    on a CPU."""
    shape = v.shape
    flat = v.round().clamp_(0, 255).long().reshape(-1, shape[-2] * shape[-1])  # [N*T*C, H*W]
    hist = torch.zeros(len(flat), 256, device=v.device).scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float))
    levels = torch.arange(256, device=v.device)
    last = torch.where(hist > 0, levels, torch.zeros_like(levels)).amax(1, keepdim=True)  # the brightest level present
    step = torch.div(hist.sum(1, keepdim=True) - hist.gather(1, last), 255, rounding_mode="floor")
    before = hist.cumsum(1) - hist  # pixels below each level
    lut = torch.div(before + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor")
    out = torch.where(step > 0, lut.clamp_(0, 255).gather(1, flat), flat.float())
    return out.view(shape)


def _colour(v: torch.Tensor, op: str, m: torch.Tensor) -> torch.Tensor:
    """A colour or tone op on [N, T, C, H, W] with one magnitude per image."""
    if op == "brightness":
        return _blend(v, torch.zeros_like(v), 1 + m)
    if op == "color":
        return _blend(v, _grey(v).expand_as(v), 1 + m)
    if op == "contrast":
        mean = _grey(v).mean(dim=(1, 2, 3, 4), keepdim=True)
        return _blend(v, mean.expand_as(v), 1 + m)
    if op == "sharpness":
        return _sharpen(v, 1 + m)
    if op == "posterize":
        step = (2 ** (8 - m.round())).view(-1, 1, 1, 1, 1)
        return torch.div(v.floor(), step, rounding_mode="floor") * step
    if op == "solarize":
        return torch.where(v >= m.view(-1, 1, 1, 1, 1), 255 - v, v)
    if op == "autocontrast":
        return _autocontrast(v)
    return _equalize(v)


def apply_op(x: torch.Tensor, op: str, m: torch.Tensor, group: int) -> torch.Tensor:
    """One op on a group of images [N, T*C, H, W] (0..255), magnitudes [N] (signed where it matters)."""
    if op == "identity":
        return x
    if op in GEOMETRIC:
        return _affine(x, op, m)
    return _colour(_frames(x, group), op, m).reshape(x.shape)


class PixelAugment:
    """data.color_jitter, data.auto_augment and their settings, on float 0..255 batches."""

    def __init__(self, jitter=0.0, policy: str = "none", num_ops: int = 2, magnitude: int = 9, group: int = 3):
        j = list(jitter) if isinstance(jitter, (list, tuple)) else [jitter, jitter, jitter]
        self.jitter = [float(v) for v in j] + [0.0] * (4 - len(j))
        self.policy, self.num_ops, self.magnitude, self.group = policy, num_ops, magnitude, group

    @classmethod
    def from_config(cls, d, group: int) -> Optional["PixelAugment"]:
        if d.auto_augment == "none" and not any(d.color_jitter if isinstance(d.color_jitter, list)
                                                else [d.color_jitter]):
            return None
        return cls(d.color_jitter, d.auto_augment, d.randaugment_ops, d.randaugment_magnitude, group)

    def __call__(self, x: torch.Tensor, gen: Optional[torch.Generator]) -> torch.Tensor:
        if any(self.jitter):
            x = self.color_jitter(x, gen)
        if self.policy != "none":
            for _ in range(self.num_ops if self.policy == "randaugment" else 1):
                x = self.random_op(x, gen)
        return x

    def _uniform(self, n: int, lo: float, hi: float, gen, device) -> torch.Tensor:
        return torch.empty(n, device=device).uniform_(lo, hi, generator=gen)

    def color_jitter(self, x: torch.Tensor, gen) -> torch.Tensor:
        """Brightness, contrast, saturation in that order, then hue (a rotation of the YIQ chroma plane)."""
        n = len(x)
        v = _frames(x, self.group)
        for name, s in zip(("brightness", "contrast", "color"), self.jitter[:3]):
            if s and not (name == "color" and v.shape[2] == 1):  # saturation needs colour
                v = _colour(v, name, self._uniform(n, max(0.0, 1 - s), 1 + s, gen, x.device) - 1)
        if self.jitter[3] and v.shape[2] == 3:
            v = _hue(v, self._uniform(n, -self.jitter[3], self.jitter[3], gen, x.device))
        return v.reshape(x.shape)

    def random_op(self, x: torch.Tensor, gen) -> torch.Tensor:
        """Each image draws an op (and, for TrivialAugment, a magnitude bin); each op runs on its group."""
        n, dev = len(x), x.device
        wide = self.policy == "trivialaugment"
        ranges = magnitude_ranges(wide, tuple(x.shape[-2:]))
        op_of = torch.randint(0, len(OPS), (n,), generator=gen, device=dev)
        bins = torch.randint(0, BINS, (n,), generator=gen, device=dev) if wide else \
            torch.full((n,), self.magnitude, device=dev)
        sign = torch.where(torch.rand(n, generator=gen, device=dev) < 0.5, -1.0, 1.0)
        out = x.clone()
        present = torch.bincount(op_of, minlength=len(OPS)).tolist()  # one host read per batch
        for k, op in enumerate(OPS):
            if not present[k] or op == "identity":
                continue
            idx = (op_of == k).nonzero().squeeze(1)
            lo, hi = ranges.get(op, (0.0, 0.0))
            m = lo + (hi - lo) * bins[idx].float() / (BINS - 1)
            if op in GEOMETRIC or op in ("brightness", "color", "contrast", "sharpness"):
                m = m * sign[idx]
            out.index_copy_(0, idx, apply_op(x.index_select(0, idx), op, m, self.group))
        return out


def _hue(v: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's chroma by ``turns`` of a full circle in YIQ space (a per-image 3x3 matrix)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=v.device)
    a = turns * 2 * math.pi
    rot = torch.zeros(len(v), 3, 3, device=v.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = a.cos(), -a.sin(), a.sin(), a.cos()
    mat = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [N, 3, 3]
    return torch.einsum("nij,ntjhw->ntihw", mat, v).clamp_(0, 255)


def random_erasing(x: torch.Tensor, p: float, gen: Optional[torch.Generator], group: Optional[int] = None,
                   scale=(0.02, 1 / 3), ratio=(0.3, 3.3)) -> torch.Tensor:
    """Erase one box per image with probability ``p`` (area fraction in ``scale``, aspect in ``ratio``),
    filled with standard-normal noise: on normalised inputs that is the data's own spread (timm's 'pixel').
    A clip (``group`` channels per frame) gets the same box and the same noise in every frame."""
    n, _, h, w = x.shape
    dev = x.device
    area = torch.empty(n, device=dev).uniform_(*scale, generator=gen) * h * w
    r = torch.empty(n, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen).exp()
    bh = (area / r).sqrt().clamp(1, h).floor()
    bw = (area * r).sqrt().clamp(1, w).floor()
    y0 = (torch.rand(n, generator=gen, device=dev) * (h - bh + 1)).floor()
    x0 = (torch.rand(n, generator=gen, device=dev) * (w - bw + 1)).floor()
    on = torch.rand(n, generator=gen, device=dev) < p
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = ((rows >= y0.view(-1, 1, 1)) & (rows < (y0 + bh).view(-1, 1, 1)) & (cols >= x0.view(-1, 1, 1))
           & (cols < (x0 + bw).view(-1, 1, 1)) & on.view(-1, 1, 1)).unsqueeze(1)
    c = group or x.shape[1]
    noise = torch.randn((n, c, h, w), generator=gen, device=dev, dtype=x.dtype).repeat(1, x.shape[1] // c, 1, 1)
    return torch.where(box, noise, x)

