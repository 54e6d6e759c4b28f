"""Language modelling: next-token cross-entropy, perplexity, hidden state carried across windows.

The task keeps the model's recurrent state between consecutive BPTT windows of a pass and
detaches it after each window, so gradients stop at the window boundary and the autograd
graph never grows across windows. Training and evaluation keep separate states (an
evaluation between epochs must not disturb a half-done training pass). The Trainer knows
none of this: it calls ``start_pass`` and saves ``state_dict`` for an exact mid-epoch resume.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TaskConfig
from ..registry import TASKS
from .base import Task


def detach_state(state):
    """Tensors (or nested tuples/lists of them, e.g. an LSTM's (h, c)) cut from their graph."""
    if state is None:
        return None
    if torch.is_tensor(state):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def move_state(state, device):
    if state is None:
        return None
    if torch.is_tensor(state):
        return state.to(device)
    return type(state)(move_state(s, device) for s in state)


class LMMeter:
    """Token-weighted loss sums over a pass, on the device (one read-back at ``compute``)."""

    def __init__(self, vocab_size: int, keep_predictions: bool = False):
        self.num_classes = vocab_size
        self.n = 0
        self._sum = None
        self.keep = keep_predictions
        self.targets: list[torch.Tensor] = []   # kept: every target token and its loss (nats)
        self.losses: list[torch.Tensor] = []
        self.passage: list[torch.Tensor] = []   # row 0 of each window: a contiguous run of the text

    def update(self, out: dict, batch: dict) -> None:
        n = batch["targets"].numel()
        s = out["loss"].detach().float() * n
        self._sum = s if self._sum is None else self._sum + s
        self.n += n
        if self.keep:
            y, logits = batch["targets"], out["outputs"].detach()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="none")
            self.targets.append(y.reshape(-1).cpu())
            self.losses.append(loss.cpu())
            self.passage.append(torch.stack([y[0].cpu().float(), loss.view(y.shape)[0].cpu()]))

    def predictions(self) -> dict:
        """Kept per-token results: ``target`` ids and ``loss`` (nats), and ``passage`` [2, L] (ids, loss) of
        the first stream, in text order."""
        if not self.keep:
            raise ValueError("this meter kept no predictions: create it with keep_predictions=True")
        cat = (lambda xs: torch.cat(xs, dim=-1)) if self.targets else (lambda xs: torch.zeros(0))
        return {"target": cat(self.targets).long(), "loss": cat(self.losses), "passage": cat(self.passage)}

    def compute(self) -> dict:
        if self._sum is None or self.n == 0:
            return {"loss": float("nan"), "ppl": float("nan"), "tokens": 0}
        loss = float(self._sum) / self.n
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "tokens": self.n}

    def state_dict(self) -> dict:
        return {"n": self.n, "sum": None if self._sum is None else self._sum.cpu()}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.n = state["n"]
        self._sum = None if state["sum"] is None else state["sum"].to(device)

    def details(self, class_names=None) -> dict:
        return {}


@TASKS.register("language_model")
class LanguageModelTask(Task):
    """Next-token prediction over [B, T] windows; the model returns (logits, state)."""

    metrics = {"loss": "min", "ppl": "min"}
    primary_metric = "ppl"
    log_metrics = ("ppl",)
    unit = "tokens"

    def __init__(self, cfg: TaskConfig, num_classes: int):
        super().__init__(cfg, num_classes)
        self.vocab_size = num_classes
        self.label_smoothing = cfg.label_smoothing
        self._state = {True: None, False: None}  # by ``train``: a pass in each mode keeps its own

    def start_pass(self, train: bool) -> None:
        self._state[train] = None

    def step(self, model: nn.Module, batch: dict, train: bool) -> dict:
        logits, state = model(batch["inputs"], self._state[train])  # [B, T] -> [B, T, V]
        self._state[train] = detach_state(state)
        smoothing = self.label_smoothing if train else 0.0
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["targets"].reshape(-1),
                               label_smoothing=smoothing)
        return {"loss": loss, "outputs": logits}

    def meter(self, keep_predictions: bool = False) -> LMMeter:
        return LMMeter(self.vocab_size, keep_predictions)

    def state_dict(self) -> dict:
        return {"train_state": move_state(self._state[True], "cpu")}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self._state[True] = move_state(state.get("train_state"), device)
