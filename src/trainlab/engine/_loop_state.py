"""The Trainer's state and what it sets up around the loop: the settings' callbacks, the
callback states of a checkpoint (also one written before callbacks existed), stop signals, RNG."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Optional

import torch

from ..config import Config
from . import distributed
from .averaging import WeightAverage
from .callbacks import Callback, from_spec
from .layer_groups import Unfreeze
from .monitoring import BestCheckpoint, EarlyStopping, ReduceOnPlateau
from .progress import ProgressBar, StepTimer, TensorBoardGraph
from .lookahead import Lookahead

LOG = logging.getLogger("trainlab")


@dataclass
class TrainState:
    epoch: int = 0          # epoch in progress (0-based)
    batch: int = 0          # next batch index within that epoch
    step: int = 0           # optimizer steps taken
    skipped_batches: int = 0
    train_meter: Optional[dict] = None  # running sums of a partly done epoch
    task_state: Optional[dict] = None   # the task's carried state in a partly done epoch (e.g. RNN hidden)


_LEGACY_MONITOR_KEYS = ("best", "best_epoch", "bad_evals")  # TrainState fields before callbacks held them


def standard_callbacks(cfg: Config) -> list[Callback]:
    """The callbacks the settings ask for, in the order they run: Lookahead first (it changes the
    weights the others see), then best.pt, unfreezing, early stopping, plateau, progress, timing, the
    weight average (after best.pt: it swaps the average in for the evaluations and back after them),
    and last the recipe's ``train.callbacks``."""
    tc = cfg.train
    out: list[Callback] = []
    if tc.lookahead_every:
        out.append(Lookahead(tc.lookahead_every, tc.lookahead_decay, start_epoch=tc.lookahead_start_epoch))
    out.append(BestCheckpoint())
    if cfg.model.unfreeze_epoch is not None:
        out.append(Unfreeze(cfg.model.unfreeze_epoch, cfg.model.unfreeze_every))
    if tc.early_stopping_patience is not None:
        out.append(EarlyStopping(tc.early_stopping_patience))
    if cfg.schedule.name == "plateau":
        out.append(ReduceOnPlateau())
    if cfg.run.progress and distributed.is_main():
        out.append(ProgressBar())
    out.append(StepTimer())
    if tc.weight_average != "none":  # after best_checkpoint: the average is swapped in for the evaluations
        out.append(WeightAverage(tc.weight_average, tc.ema_decay, tc.average_start_epoch))
    if cfg.run.tensorboard and cfg.run.tensorboard_graph and distributed.is_main():
        out.append(TensorBoardGraph())
    return out + [from_spec(spec, f"train.callbacks[{i}]") for i, spec in enumerate(tc.callbacks)]


def callback_states(ckpt: dict, trainer_state: dict) -> dict:
    """The checkpoint's callback states; for a last.pt written before callbacks existed, rebuilt
    from where that version kept them (monitor fields in "trainer", Lookahead at the top level).
    Pops the legacy keys from ``trainer_state``."""
    legacy = {k: trainer_state.pop(k) for k in _LEGACY_MONITOR_KEYS if k in trainer_state}
    if "callbacks" in ckpt:
        return ckpt["callbacks"]
    states = {}
    if legacy:
        states["best_checkpoint"] = {"best": legacy.get("best"), "best_epoch": legacy.get("best_epoch")}
        states["early_stopping"] = {**states["best_checkpoint"], "bad_evals": legacy.get("bad_evals", 0)}
    if "lookahead" in ckpt:
        states["lookahead"] = ckpt["lookahead"]
    return states


_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")  # Ctrl-C; what schedulers (Slurm, Kubernetes) send first


def install_signal_handlers(trainer) -> dict:
    """The first Ctrl-C (or SIGTERM / SIGUSR1) asks the loop to stop at the next step boundary and
    save a resumable last.pt; a second one stops at once. Returns the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        if trainer._interrupted:
            raise KeyboardInterrupt
        trainer._interrupted = True
        LOG.warning("%s: stopping after this step and saving a checkpoint (press Ctrl-C again to abort)",
                    signal.Signals(signum).name)

    previous = {}
    for name in _STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    return previous


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
