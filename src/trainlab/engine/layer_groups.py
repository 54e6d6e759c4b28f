"""A model's layers in order, for discriminative learning rates and gradual unfreezing.

``layer_groups`` cuts a model into its blocks from the input to the head: its top-level children,
and a child holding more than half of the weights split into its own children (a ResNet's last
stage, a ViT's encoder, a Sequential that is the whole net), so the groups follow depth without
any per-architecture table. ``optim.layer_lr_decay=d`` trains the last group (the head) at the
schedule's LR and each earlier one at ``d`` times the next (ULMFiT's and BEiT's layer decay);
``model.unfreeze_epoch`` / ``model.unfreeze_every`` make frozen groups trainable again from the
head down (fastai's ``fine_tune``: freeze, train the head, then unfreeze).
"""

from __future__ import annotations

import logging

from torch import nn

from .callbacks import Callback

LOG = logging.getLogger("trainlab")


def _size(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def layer_groups(model: nn.Module, max_splits: int = 8) -> list[list[nn.Parameter]]:
    """Parameters grouped by block, input side first; every parameter in exactly one group."""
    total = max(1, _size(model))
    units: list[nn.Module] = [model]
    for _ in range(max_splits):
        big = max(range(len(units)), key=lambda i: _size(units[i]))
        kids = [c for c in units[big].children() if _size(c)]
        if _size(units[big]) * 2 <= total or len(kids) < 2 and units[big] is not model:
            break
        own = list(units[big].parameters(recurse=False))
        if not kids:
            break
        units[big:big + 1] = kids
        if own:  # parameters a container holds itself (a ViT's class token, position embedding) go first
            units.insert(big, _Holder(own))
    groups, seen = [], set()
    for u in units:
        ps = [p for p in u.parameters() if id(p) not in seen]
        seen.update(id(p) for p in ps)
        if ps:
            groups.append(ps)
    return groups


class _Holder(nn.Module):
    """Stands for a container's own parameters in the list of blocks."""

    def __init__(self, params: list[nn.Parameter]):
        super().__init__()
        self._params = params

    def parameters(self, recurse: bool = True):
        return iter(self._params)


def lr_scales(model: nn.Module, decay: float) -> dict[int, float]:
    """id(parameter) -> LR multiplier: 1 for the last group, ``decay`` ** (groups after it) otherwise."""
    groups = layer_groups(model)
    return {id(p): decay ** (len(groups) - 1 - i) for i, ps in enumerate(groups) for p in ps}


class Unfreeze(Callback):
    """After ``start`` epochs, frozen groups become trainable: all at once (``every`` 0), or one more
    group from the head down every ``every`` epochs. Frozen batch-norm layers keep their statistics.
    Which groups are trainable is a function of the epoch, so a resumed run agrees exactly."""

    name = "unfreeze"

    def __init__(self, start: int, every: int = 0):
        self.start, self.every = start, every
        self.frozen: list[list[nn.Parameter]] = []

    def on_fit_start(self, trainer, resumed: bool) -> None:
        # only what model.freeze froze: a model's own fixed weights (speednet's whitening stem) stay fixed
        self.frozen = [[p for p in ps if getattr(p, "frozen_by_recipe", False)] for ps in layer_groups(trainer.model)]
        self._apply(trainer.state.epoch)

    def on_epoch_end(self, trainer, epoch: int, partial: bool) -> None:
        if not partial:
            self._apply(epoch + 1)

    def _apply(self, done: int) -> None:
        if done < self.start:
            return
        n = len(self.frozen) if self.every == 0 else 1 + (done - self.start) // self.every
        opened, groups, params = 0, 0, 0
        for ps in self.frozen[::-1]:  # the head's side first
            if not ps:
                continue
            if opened >= n:
                break
            opened += 1
            if not ps[0].requires_grad:
                for p in ps:
                    p.requires_grad_(True)
                groups, params = groups + 1, params + sum(p.numel() for p in ps)
        if groups:
            LOG.info("unfroze %d layer group(s), %d parameters, after epoch %d", groups, params, done)
