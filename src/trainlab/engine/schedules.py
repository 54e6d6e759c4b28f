"""Learning-rate schedules as functions of the optimizer step count.

Every schedule is ``factor(step) -> multiplier of optim.lr``, wrapped in an optional linear
warmup. Epoch-based settings (step_size, milestones) are converted to steps once, so a
schedule behaves the same whatever the batch size or accumulation. ``plateau`` multiplies
in a factor driven by the monitored metric at each evaluation.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable

import torch

from ..config import ScheduleConfig
from ..registry import SCHEDULES

Factor = Callable[[int], float]


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """The peak learning rate throughout (after any warmup)."""
    return lambda step: 1.0


@SCHEDULES.register("plateau")
def plateau(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Constant until train.monitor stalls for schedule.patience evaluations, then times schedule.factor."""
    return lambda step: 1.0  # the reductions come from Schedule.observe


@SCHEDULES.register("step")
def step_decay(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Times schedule.gamma every schedule.step_size epochs (StepLR)."""
    every = max(1, round(cfg.step_size * spe))
    return lambda step: cfg.gamma ** (step // every)


@SCHEDULES.register("multistep")
def multistep(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Times schedule.gamma at each epoch in schedule.milestones."""
    marks = sorted(round(m * spe) for m in cfg.milestones)
    return lambda step: cfg.gamma ** bisect.bisect_right(marks, step)


@SCHEDULES.register("exponential")
def exponential(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Times schedule.gamma per epoch, applied every step."""
    return lambda step: cfg.gamma ** (step / spe)


def _cosine(start: int, total: int, floor: float) -> Factor:
    span = max(1, total - start)
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0, step - start) / span)))


@SCHEDULES.register("cosine")
def cosine(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Cosine from the peak (after the warmup) down to min_lr at the last step."""
    return _cosine(warmup, total, cfg.min_lr / base_lr)


@SCHEDULES.register("linear")
def linear(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Straight down from the peak (after the warmup) to min_lr at the last step: the decay of the
    fast-training records (airbench, hlb-cifar10), which spend less time at tiny rates than cosine."""
    floor, span = cfg.min_lr / base_lr, max(1, total - warmup)
    return lambda step: floor + (1 - floor) * (1 - min(1.0, max(0, step - warmup) / span))


@SCHEDULES.register("onecycle")
def onecycle(cfg: ScheduleConfig, spe: int, total: int, warmup: int, base_lr: float) -> Factor:
    """Up from lr/25 over the warmup (30% of training unless set), then cosine down."""
    return _cosine(warmup, total, cfg.min_lr / base_lr)


class Schedule:
    """Sets the optimizer's LR every step from an explicit step count; state is tiny and exact."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, base_lr: float,
                 steps_per_epoch: int, total_steps: int, monitor_mode: str = "max"):
        self.optimizer = optimizer
        self.cfg = cfg
        self.base_lr = base_lr
        warmup = cfg.warmup_steps + round(cfg.warmup_epochs * steps_per_epoch)
        if cfg.name == "onecycle" and warmup == 0:
            warmup = round(0.3 * total_steps)
        self.warmup = warmup
        self.warmup_start = 1 / 25 if cfg.name == "onecycle" else 0.0
        self.factor = SCHEDULES.create(cfg.name, cfg, steps_per_epoch, total_steps, warmup, base_lr)
        self.mode = monitor_mode
        self.scale = 1.0  # plateau reductions
        self.best: float | None = None
        self.bad = 0
        self.apply(0)

    def lr_at(self, step: int) -> float:
        f = self.factor(step)
        if step < self.warmup:
            if self.cfg.name == "onecycle":  # from lr/25 at step 0 up to lr
                f = self.warmup_start + (1 - self.warmup_start) * step / self.warmup
            else:  # linear, never exactly zero
                f = min(f, (step + 1) / self.warmup)
        return self.base_lr * f * self.scale

    def apply(self, step: int) -> float:
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def observe(self, value: float) -> None:
        """Plateau: after ``patience`` evaluations without improvement multiply the LR by ``factor``."""
        if self.cfg.name != "plateau" or value != value:
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.cfg.patience:
            self.scale *= self.cfg.factor
            self.bad = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]
