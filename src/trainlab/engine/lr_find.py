"""The learning-rate range test (Leslie Smith 2015; fastai's ``lr_find``) through the real Trainer step.

The LR grows exponentially from ``start_lr`` to ``end_lr`` over at most ``steps`` optimizer steps
of ``Trainer.train_step`` (so the recipe's model, data, precision, accumulation and clipping
apply); the loss is smoothed by an exponential moving average (bias-corrected) and the test
stops when the smoothed loss exceeds ``diverge`` times its minimum or turns non-finite. The
suggestion is the LR of the steepest descent of the smoothed loss before its minimum. Nothing of
the run is changed: the weights (with batch-norm statistics), the optimizer and scaler states,
the step counters, the schedule, the callbacks and every RNG are put back afterwards.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from ..errors import NonFiniteLossError
from ._loop_state import rng_state, set_rng_state
from .callbacks import CallbackList

LOG = logging.getLogger("trainlab")


@dataclass
class RangeTest:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)     # raw loss of each step
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    min_loss_lr: float | None = None
    stopped: str = ""                                     # why the sweep ended
    warning: str = ""

    def to_dict(self) -> dict:
        return dict(vars(self))


class _Sweep:
    """A stand-in for the Trainer's schedule: sets the LR of step ``i`` of the sweep."""

    def __init__(self, optimizer, start: float, end: float, steps: int):
        self.optimizer, self.start, self.ratio, self.steps, self.i = optimizer, start, end / start, steps, 0

    def lr(self, i: int) -> float:
        return self.start * self.ratio ** (i / max(1, self.steps - 1))

    def set(self, i: int) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr(i)

    def apply(self, step: int) -> None:  # called by train_step after each optimizer step
        self.i += 1
        self.set(self.i)


class _LastLoss:
    """A meter that keeps the losses of the batches since the last optimizer step."""

    def __init__(self):
        self.pending: list[float] = []

    def update(self, out: dict, batch: dict) -> None:
        self.pending.append(float(out["loss"].detach()))


def transformer_warning(model: nn.Module) -> str:
    if any(isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer)) or "Attention" in type(m).__name__
           for m in model.modules()):
        return ("this model has attention layers: for Transformers the range test is known to mislead (they "
                "need warmup, and the loss of the first steps says little about the LR that trains best); "
                "treat the suggestion as an upper bound and keep a warmup schedule")
    return ""


def _snapshot(trainer) -> dict:
    return {"model": copy.deepcopy(trainer.model.state_dict()), "optim": copy.deepcopy(trainer.optimizer.state_dict()),
            "scaler": copy.deepcopy(trainer.scaler.state_dict()), "state": copy.deepcopy(trainer.state),
            "schedule": trainer.schedule, "callbacks": trainer.callbacks, "rng": rng_state(),
            "py": random.getstate(), "np": np.random.get_state(), "training": trainer.model.training}


def _restore(trainer, snap: dict) -> None:
    trainer.model.load_state_dict(snap["model"])
    trainer.optimizer.load_state_dict(snap["optim"])  # its param groups' LRs too
    trainer.scaler.load_state_dict(snap["scaler"])
    trainer.state, trainer.schedule, trainer.callbacks = snap["state"], snap["schedule"], snap["callbacks"]
    trainer.optimizer.zero_grad(set_to_none=True)
    set_rng_state(snap["rng"])
    random.setstate(snap["py"])
    np.random.set_state(snap["np"])
    trainer.model.train(snap["training"])


def lr_range_test(trainer, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, beta: float = 0.98,
                  diverge: float = 4.0) -> RangeTest:
    """Sweeps the LR on ``trainer``'s training data and puts everything back; returns the curve."""
    result = RangeTest(warning=transformer_warning(trainer.model))
    snap = _snapshot(trainer)
    sweep = _Sweep(trainer.optimizer, start_lr, end_lr, steps)
    trainer.schedule, trainer.callbacks = sweep, CallbackList([])
    try:
        _sweep(trainer, sweep, steps, beta, diverge, result)
    finally:
        _restore(trainer, snap)
    _suggest(result)
    return result


def _sweep(trainer, sweep: _Sweep, steps: int, beta: float, diverge: float, result: RangeTest) -> None:
    accumulate, loader = trainer.cfg.train.accumulate, trainer.loaders["train"]
    meter, avg, best, epoch = _LastLoss(), 0.0, math.inf, 0
    trainer.model.train()
    trainer.task.start_pass(True)
    sweep.set(0)
    while len(result.lrs) < steps:
        any_batch = False
        for b, batch in enumerate(loader.iterate(epoch)):
            any_batch = True
            lr = sweep.lr(sweep.i)
            do_step = (b + 1) % accumulate == 0
            try:
                trainer.train_step(batch, meter, do_step)
            except NonFiniteLossError:
                result.stopped = f"the loss became non-finite at LR {lr:.3g}"
                return
            if not do_step:
                continue
            loss = sum(meter.pending) / max(1, len(meter.pending))
            meter.pending = []
            avg = beta * avg + (1 - beta) * loss
            smooth = avg / (1 - beta ** (len(result.lrs) + 1))
            result.lrs.append(lr)
            result.losses.append(loss)
            result.smoothed.append(smooth)
            best = min(best, smooth)
            if not math.isfinite(smooth) or smooth > diverge * best:
                result.stopped = f"the smoothed loss exceeded {diverge:g} x its minimum at LR {lr:.3g}"
                return
            if len(result.lrs) >= steps:
                break
        if not any_batch:
            break
        epoch += 1
    result.stopped = f"reached {len(result.lrs)} steps (LR {result.lrs[-1]:.3g})" if result.lrs else "no batches"


def _suggest(result: RangeTest) -> None:
    """The LR of the steepest fall of the smoothed loss (per decade of LR) before its minimum; the LR of
    the minimum itself is recorded too (a tenth of it is the other common rule)."""
    s = result.smoothed
    if len(s) < 5:
        return
    low = int(np.argmin(s))
    result.min_loss_lr = result.lrs[low]
    logs = np.log10(result.lrs[:low + 1])
    if low < 3:
        result.suggestion = result.lrs[low] / 10
        return
    slope = np.gradient(np.asarray(s[:low + 1]), logs)
    skip = max(1, low // 10)  # the first steps are the smoothing's warm-up
    result.suggestion = float(result.lrs[skip + int(np.argmin(slope[skip:]))])
