"""The built-in callbacks that report progress and time: the progress bar (or log lines) and the
first-step timer."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
import warnings
from typing import Optional

from ..registry import CALLBACKS
from .callbacks import Callback

LOG = logging.getLogger("trainlab")


@CALLBACKS.register("progress")
class ProgressBar(Callback):
    """On a terminal: a tqdm bar per epoch with the running loss and throughput. Elsewhere (a log
    file, a notebook's captured output, a batch job): a log line about every tenth of an epoch
    (at least ``train.log_every_steps`` batches apart), which train.log keeps too."""

    name = "progress"

    def __init__(self, terminal: Optional[bool] = None):
        self.terminal = terminal  # None: decided at fit start from stderr
        self.bar = None
        self._t0, self._t0_epoch = 0.0, 0
        self._logged = 0  # the batch count of the last progress line

    def on_fit_start(self, trainer, resumed):
        if self.terminal is None:
            self.terminal = sys.stderr.isatty()
        if self.terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(trainer.loaders["train"]), unit="batch", dynamic_ncols=True, leave=False)
            self.bar.update(trainer.state.batch)
            self.bar.set_description(f"epoch {trainer.state.epoch + 1}/{trainer.cfg.train.epochs}")
        self._t0, self._logged, self._t0_epoch = time.perf_counter(), trainer.state.batch, trainer.state.epoch

    def _interval(self, trainer) -> int:
        return max(trainer.cfg.train.log_every_steps, -(-len(trainer.loaders["train"]) // 10))

    def on_step_end(self, trainer):
        if self.terminal is None:  # a tool calling Trainer.train_step outside fit
            return
        s, n = trainer.state, len(trainer.loaders["train"])
        if s.epoch != self._t0_epoch:  # the first step of an epoch: the evaluations are not throughput
            self._t0, self._t0_epoch = time.perf_counter(), s.epoch
        if self.bar is not None:
            self.bar.update(s.batch - self.bar.n)
            if s.step % trainer.cfg.train.log_every_steps == 0 or s.batch == n:
                self.bar.set_postfix(self._status(trainer))
        elif s.batch // self._interval(trainer) > self._logged // self._interval(trainer) and s.batch < n:
            self._logged = s.batch
            status = "  ".join(f"{k} {v}" for k, v in self._status(trainer).items())
            LOG.info("epoch %d/%d  batch %d/%d (%d%%)  %s", s.epoch + 1, trainer.cfg.train.epochs, s.batch, n,
                     100 * s.batch // n, status)

    def _status(self, trainer) -> dict:
        rate = trainer.seen_in_epoch / max(time.perf_counter() - self._t0, 1e-9)
        meter = trainer.live_meter
        loss = f"{meter.compute()['loss']:.4f}" if meter is not None else "?"
        return {"loss": loss, f"{trainer.task.unit}_s": f"{rate:,.0f}"}

    def on_epoch_end(self, trainer, epoch, partial):
        self._logged = 0
        if self.bar is not None and not partial and epoch + 1 < trainer.cfg.train.epochs:
            self.bar.set_description(f"epoch {epoch + 2}/{trainer.cfg.train.epochs}")
            self.bar.reset(total=len(trainer.loaders["train"]))

    def on_fit_end(self, trainer, result):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@CALLBACKS.register("step_timer")
class StepTimer(Callback):
    """Wall time from fit start to this process's first optimizer step (compile and warm-up
    included): ``first_step_s``, which timing.json and the speedrun report."""

    name = "step_timer"

    def __init__(self):
        self.first_step_s: Optional[float] = None
        self._t0: Optional[float] = None

    def on_fit_start(self, trainer, resumed):
        self._t0 = time.perf_counter()

    def on_step_end(self, trainer):
        if self.first_step_s is None and self._t0 is not None:
            self.first_step_s = round(time.perf_counter() - self._t0, 3)


@CALLBACKS.register("tensorboard_graph")
class TensorBoardGraph(Callback):
    """The model's graph in the run's TensorBoard events (its Graphs tab), traced once at the start
    of a fresh run from two training inputs in eval mode, with the RNG state restored after, so
    training is exactly what it would be without it. A model tracing cannot follow is noted and
    skipped."""

    name = "tensorboard_graph"

    def on_fit_start(self, trainer, resumed):
        tb = getattr(trainer.writer, "tb", None)
        if resumed or tb is None:
            return
        import torch

        model = trainer.model
        was_training = model.training
        try:
            with torch.random.fork_rng(devices=[]):
                batch = next(iter(trainer.loaders["train"].iterate(0)))
                x = batch["inputs"][:2]
                model.eval()
                with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")  # add_graph traces with torch.jit, which warns it is deprecated
                    tb.add_graph(_traceable(model), x, use_strict_trace=False)  # it prints its own failures
            tb.flush()
        except Exception as e:  # noqa: BLE001 - a graph is a nicety: never stop a run for it
            LOG.info("TensorBoard graph not written (%s: %s); run.tensorboard_graph=false skips the attempt",
                     type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        finally:
            model.train(was_training)


def _tensor_outputs(out):
    """Only the tensors of a forward's output (a language model's (logits, None) state included)."""
    if isinstance(out, (tuple, list)):
        kept = [t for o in out for t in _tensor_outputs(o)]
        return tuple(kept)
    return (out,) if hasattr(out, "shape") else ()


def _traceable(model):
    """The model behind a wrapper whose output tracing can follow."""
    from torch import nn

    class TensorOutputs(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.model = inner

        def forward(self, x):
            out = _tensor_outputs(self.model(x))
            return out[0] if len(out) == 1 else out

    return TensorOutputs(model)
