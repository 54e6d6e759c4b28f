"""airbench's Lookahead as a callback (``train.lookahead_every``)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..registry import CALLBACKS
from .callbacks import Callback


@CALLBACKS.register("lookahead")
class Lookahead(Callback):
    """Every ``every`` optimizer steps an average of the model's float state (weights and batch-norm
    statistics) moves towards the model, ``avg += (1 - rho) (model - avg)``, and is copied back into
    it, with ``rho = decay**every * (step / total)**3``: the model moves freely early on and is
    averaged strongly at the end. The average is also copied back at each complete epoch's end,
    so evaluations and checkpoints see it. Its state travels in last.pt.

    ``start_step``/``total_steps`` may be left out; they are then set at fit start from
    ``start_epoch`` and the Trainer's step counts."""

    name = "lookahead"

    def __init__(self, every: int, decay: float = 0.95, start_step: Optional[int] = None,
                 total_steps: Optional[int] = None, start_epoch: float = 0.0):
        self.every, self.decay, self.start_epoch = every, decay, start_epoch
        self.start = start_step
        self.total = None if total_steps is None else max(1, total_steps)
        self.avg: Optional[dict] = None

    def on_fit_start(self, trainer, resumed):
        if self.start is None:
            self.start = round(self.start_epoch * trainer.steps_per_epoch)
        if self.total is None:
            self.total = max(1, trainer.total_steps)

    def on_step_end(self, trainer):
        if self.start is None or self.total is None:  # a tool calling Trainer.train_step outside fit
            self.on_fit_start(trainer, False)
        self.after_step(trainer.model, trainer.state.step)

    def on_epoch_end(self, trainer, epoch, partial):
        if not partial:
            self.end_epoch(trainer.model)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if step < self.start or step % self.every:
            return
        state = model.state_dict()
        if self.avg is None:
            self.avg = {k: v.detach().clone() for k, v in state.items() if v.is_floating_point()}
            return
        rho = self.decay ** self.every * (step / self.total) ** 3
        for k, a in self.avg.items():
            a.lerp_(state[k], 1 - rho)
            state[k].copy_(a)

    @torch.no_grad()
    def end_epoch(self, model: nn.Module) -> None:
        if self.avg is not None:
            state = model.state_dict()
            for k, a in self.avg.items():
                state[k].copy_(a)

    def state_dict(self) -> dict:
        return {"avg": self.avg}

    def load_state_dict(self, state: dict) -> None:
        self.avg = state["avg"]
