"""The check of the training loss for NaN/Inf, without a host sync per step on a GPU.

``bool(torch.isfinite(loss))`` makes the host wait until the GPU has finished the step, so the
queue of kernels drains every step. ``FiniteGuard`` instead copies each step's loss into a small
buffer on the device and reads it every ``train.nonfinite_check_every`` steps, before every
checkpoint is written and at every epoch end: weights are never saved (or evaluated) after a
non-finite step went unnoticed, and the error still names the epoch, batch and step of the
first non-finite loss. With ``every == 1`` (the default on CPU, where the check costs nothing,
and always with ``on_nonfinite=skip_batch``, which must decide before the optimizer step) the
Trainer checks each loss at once, as before. Under DDP one collective per check sums the ranks'
flags and their stop requests, so every rank stops (or raises) after the same step.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..errors import NonFiniteLossError
from . import distributed

GPU_CHECK_EVERY = 100  # steps between reads of the loss buffer on a GPU unless set


def check_every(train_cfg, device: torch.device) -> int:
    """How many training steps the Trainer runs between reads of their losses."""
    if train_cfg.on_nonfinite == "skip_batch":
        return 1
    if train_cfg.nonfinite_check_every is not None:
        return train_cfg.nonfinite_check_every
    return 1 if device.type == "cpu" else GPU_CHECK_EVERY


def nonfinite_error(value: str, where: tuple[int, int, int], last: Optional[str], note: str = "") -> NonFiniteLossError:
    epoch, batch, step = where
    found = f"last good checkpoint: {last}" if last else "no checkpoint written yet"
    return NonFiniteLossError(
        f"loss became {value} at epoch {epoch + 1}, batch {batch}, step {step}{note}; {found}. "
        f"Lower optim.lr, set train.grad_clip, or train.on_nonfinite=skip_batch")


class FiniteGuard:
    """The deferred check: ``record`` each loss (no sync), ``check`` reads them (one sync)."""

    def __init__(self, every: int, device: torch.device):
        self.every, self.device = every, device
        self.values = torch.zeros(every, dtype=torch.float32, device=device) if every > 1 else None
        self.where: list[tuple[int, int, int]] = []  # (epoch, batch, step) of each loss in the buffer
        self.stop_agreed = False  # under DDP: some rank was asked to stop, so every rank stops now
        self.last_checkpoint: Callable[[], Optional[str]] = lambda: None  # named in the error

    @property
    def deferred(self) -> bool:
        return self.every > 1

    def record(self, loss: torch.Tensor, where: tuple[int, int, int], interrupted: bool) -> None:
        """Keep this step's loss on the device; read the buffer when it is full."""
        self.values[len(self.where)] = loss.detach()  # a device copy: the host does not wait
        self.where.append(where)
        if len(self.where) == self.every:
            self.check(interrupted)

    def check(self, interrupted: bool = False) -> None:
        """Read the recorded losses; NonFiniteLossError naming the first non-finite one. Every rank
        calls this at the same points (each runs the same number of steps)."""
        if not self.deferred:
            return
        k, where = len(self.where), self.where
        self.where = []
        values = self.values[:k].detach().cpu() if k else torch.zeros(0)
        bad = ~torch.isfinite(values)
        if distributed.active():
            flags = torch.cat([bad.double(), torch.tensor([float(interrupted)], dtype=torch.float64)])
            summed = distributed.all_sum(*flags.tolist())
            summed = summed if isinstance(summed, list) else [summed]
            bad_any = torch.tensor(summed[:k]) > 0
            self.stop_agreed = self.stop_agreed or summed[k] > 0
        else:
            bad_any = bad
        if bool(bad_any.any()):
            i = int(bad_any.nonzero()[0])
            value = str(values[i].item()) if bad[i] else "non-finite on another rank"
            note = f" (noticed {k - i - 1} batch(es) later: train.nonfinite_check_every={self.every})"
            raise nonfinite_error(value, where[i], self.last_checkpoint(), note)
