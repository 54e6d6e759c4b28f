"""The built-in callbacks that follow ``train.monitor``: best.pt, early stopping, the plateau schedule.

Each reads the monitored value of an epoch-end evaluation and the direction the task declared
(``trainer.mode``); a train.max_steps pause mid-epoch ranks nothing.
"""

from __future__ import annotations

import logging
from typing import Optional

from ..errors import ConfigError
from ..registry import CALLBACKS
from .callbacks import Callback

LOG = logging.getLogger("trainlab")


def better(value: float, best: Optional[float], mode: str) -> bool:
    """Strictly better than ``best`` in direction ``mode``; NaN never is."""
    return value == value and (best is None or (value > best if mode == "max" else value < best))


def monitored(trainer, evals: dict) -> float:
    split, key = trainer.monitor_split, trainer.monitor_key
    value = evals[split].get(key)
    if value is None:
        have = ", ".join(k for k in evals[split] if k not in ("samples", "tokens"))
        raise ConfigError(f"train.monitor={trainer.cfg.train.monitor}: '{key}' is not a metric of this task "
                          f"(have: {have})")
    return value


@CALLBACKS.register("best_checkpoint")
class BestCheckpoint(Callback):
    """Writes best.pt (weights, config, metadata) whenever ``train.monitor`` improves at an epoch
    end. A train.max_steps stop mid-epoch is a pause, not an epoch end, so it ranks nothing; but a
    run paused before any epoch ended still leaves a best.pt, of its current weights, and says so
    (``best_step``), so the commands that read best.pt work on every run that ended."""

    name = "best_checkpoint"

    def __init__(self):
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.best_step: Optional[int] = None  # set when best.pt holds a pause's weights, no epoch's

    def on_eval_end(self, trainer, epoch, evals, partial):
        if partial:
            if self.best_epoch is None:
                self.best_step = trainer.state.step
                trainer.save("best.pt", full=False)
            return None
        value = monitored(trainer, evals)
        if better(value, self.best, trainer.mode):
            self.best, self.best_epoch, self.best_step = value, epoch + 1, None
            trainer.save("best.pt", full=False)
        return None

    def describe(self) -> str:
        """Which weights best.pt holds, in words."""
        if self.best_epoch is not None:
            return f"best checkpoint, epoch {self.best_epoch}"
        if self.best_step is not None:
            return f"weights at step {self.best_step}: train.max_steps ended before the first epoch end"
        return "last weights"

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "best_step": self.best_step}

    def load_state_dict(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.best_step = state.get("best_step")


@CALLBACKS.register("early_stopping")
class EarlyStopping(Callback):
    """Stops after ``patience`` epoch-end evaluations without improvement of ``train.monitor``."""

    name = "early_stopping"

    def __init__(self, patience: int):
        if patience < 1:
            raise ConfigError(f"early stopping patience must be >= 1, got {patience}")
        self.patience = patience
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.bad_evals = 0

    def on_eval_end(self, trainer, epoch, evals, partial):
        if partial:
            return None
        value = monitored(trainer, evals)
        if better(value, self.best, trainer.mode):
            self.best, self.best_epoch, self.bad_evals = value, epoch + 1, 0
            return False
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            LOG.info("early stopping: %s did not improve for %d evaluation(s); best %.4f at epoch %s",
                     trainer.cfg.train.monitor, self.bad_evals, self.best, self.best_epoch)
            return True
        return False

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_evals": self.bad_evals}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.bad_evals = state["best"], state["best_epoch"], state["bad_evals"]


@CALLBACKS.register("reduce_on_plateau")
class ReduceOnPlateau(Callback):
    """schedule.name=plateau: gives the schedule each epoch-end value of ``train.monitor`` (the
    schedule keeps its own state in last.pt)."""

    name = "reduce_on_plateau"

    def on_eval_end(self, trainer, epoch, evals, partial):
        if not partial:
            trainer.schedule.observe(monitored(trainer, evals))
        return None
