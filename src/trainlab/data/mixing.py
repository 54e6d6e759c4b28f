"""MixUp and CutMix on whole training batches, with soft targets.

A mixed batch pairs each sample with the batch's reverse (as timm does: the batch is already in a
random order), mixes inputs by ``lam ~ Beta(alpha, alpha)`` (MixUp) or pastes a box of the partner
(CutMix, ``lam`` then the area kept), and adds ``batch["soft_targets"]`` [B, classes], rows summing
to 1, which the classification loss uses in training; ``batch["targets"]`` keeps the hard labels
(the training accuracy counts those). Every draw comes from a Python RNG seeded by (seed, epoch,
batch), so nothing waits for the device and a resumed run mixes exactly as it would have.
"""

from __future__ import annotations

import math
import random

import torch.nn.functional as F


class Mixer:
    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0, prob: float = 1.0):
        self.num_classes, self.mixup, self.cutmix, self.prob = num_classes, mixup, cutmix, prob

    @classmethod
    def from_config(cls, d, num_classes: int):
        if not (d.mixup or d.cutmix) or d.mix_prob == 0:
            return None
        return cls(num_classes, d.mixup, d.cutmix, d.mix_prob)

    def draw(self, seed: int, h: int, w: int):
        """(kind, lam, box) for one batch: kind None (not mixed), 'mixup' or 'cutmix' (box: y0, y1, x0, x1)."""
        rng = random.Random(seed)
        if rng.random() >= self.prob:
            return None, 1.0, None
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or rng.random() < 0.5)
        lam = rng.betavariate(*(2 * [self.cutmix if use_cutmix else self.mixup]))
        if not use_cutmix:
            return "mixup", lam, None
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = rng.randrange(h), rng.randrange(w)
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        return "cutmix", 1 - (y1 - y0) * (x1 - x0) / (h * w), (y0, y1, x0, x1)

    def __call__(self, batch: dict, seed: int) -> dict:
        x, y = batch["inputs"], batch["targets"]
        kind, lam, box = self.draw(seed, x.shape[-2], x.shape[-1])
        one_hot = F.one_hot(y, self.num_classes).float()
        if kind is None or len(x) < 2:
            return {**batch, "soft_targets": one_hot}
        partner = x.flip(0)
        if kind == "mixup":
            x = x * lam + partner * (1 - lam)
        else:
            y0, y1, x0, x1 = box
            x = x.clone()
            x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        return {**batch, "inputs": x, "soft_targets": one_hot * lam + one_hot.flip(0) * (1 - lam)}
