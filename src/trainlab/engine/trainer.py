"""The one training loop. It knows batches, losses and metrics dicts, never images or words.

``Trainer.fit`` runs epochs of optimizer steps with autocast, accumulation and clipping,
evaluates after each epoch, keeps ``last.pt`` (resumable at any step boundary) and ends by
evaluating the best checkpoint on the test split. Everything else (best.pt, early stopping,
the plateau schedule, Lookahead, the progress bar, timings, users' own additions) is a
callback (``engine/callbacks.py``): the loop body is batch, step, events. A resumed run replays
exactly what an uninterrupted run does: batches are functions of (seed, epoch, batch), and the
RNG, the task's carried state and every callback's state travel in the checkpoint.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError
from ..tracking import MetricsWriter, RunDir
from . import distributed, resume_state
from ._finite import FiniteGuard, check_every, nonfinite_error
from ._loop_state import TrainState, install_signal_handlers, standard_callbacks
from .callbacks import Callback, CallbackList
from .monitoring import BestCheckpoint
from .progress import ProgressBar, StepTimer
from .checkpoint import save_checkpoint
from .device import autocast
from .evaluate import evaluate_model, format_metrics
from .final_test import final_test
from .optim import build_optimizer
from .schedules import Schedule

LOG = logging.getLogger("trainlab")


class Trainer:
    def __init__(self, cfg: Config, model: nn.Module, task, loaders: dict, device: torch.device,
                 run: Optional[RunDir] = None, meta: Optional[dict] = None,
                 callbacks: Optional[list[Callback]] = None):
        """``callbacks``: the run's extra callbacks (Python objects), after those of the settings."""
        self.cfg, self.task, self.loaders, self.device, self.run = cfg, task, loaders, device, run
        self.model = model.to(device)
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # the compiled (and, under torchrun, DDP) wrapper runs the steps; checkpoints keep the plain
        # module's parameter names, and evaluation skips DDP (its forward would sync buffers per batch)
        ddp = distributed.wrap(self.model, device)
        self.runner = torch.compile(ddp) if cfg.train.compile else ddp
        self.eval_runner = self.runner if ddp is self.model else (
            torch.compile(self.model) if cfg.train.compile else self.model)
        self.meta = meta or {}
        tc = cfg.train
        self.monitor_split, self.monitor_key = tc.monitor.split(".", 1)
        if self.monitor_split not in loaders:
            raise ConfigError(f"train.monitor={tc.monitor} but there is no '{self.monitor_split}' split "
                              f"(splits: {', '.join(loaders)}); set data.valid_fraction > 0 or "
                              f"train.monitor=train.loss")
        self.mode = task.direction(self.monitor_key)  # the task declares whether higher is better
        self.optimizer = build_optimizer(self.model, cfg.optim, include_frozen=cfg.model.unfreeze_epoch is not None)
        train_batches = len(loaders["train"])
        self.steps_per_epoch = max(1, math.ceil(train_batches / tc.accumulate))
        total = self.steps_per_epoch * tc.epochs
        self.total_steps = min(total, tc.max_steps) if tc.max_steps else total
        self.schedule = Schedule(self.optimizer, cfg.schedule, cfg.optim.lr, self.steps_per_epoch,
                                 self.total_steps, self.mode)
        self.scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
        self.callbacks = CallbackList(standard_callbacks(cfg) + list(callbacks or []))
        self.state = TrainState()
        self.guard = FiniteGuard(check_every(tc, device), device)
        self.guard.last_checkpoint = self._last_checkpoint
        self.metrics: list[dict] = []
        self.writer: Optional[MetricsWriter] = None
        self._interrupted = False
        self._resumed = False
        self.live_meter = None  # the meter of an epoch in progress (callbacks may read it; compute() syncs)
        self.seen_in_epoch = 0  # samples (or tokens) trained on in this process's part of the epoch

    def callback(self, kind: type) -> Optional[Callback]:
        """The run's first callback of this class, if any."""
        return next((cb for cb in self.callbacks if isinstance(cb, kind)), None)

    @property
    def best_epoch(self) -> Optional[int]:
        best = self.callback(BestCheckpoint)
        return best.best_epoch if best is not None else None

    @property
    def first_step_s(self) -> Optional[float]:
        """Wall time of this process's first step (compile, warm-up), from the step timer."""
        timer = self.callback(StepTimer)
        return timer.first_step_s if timer is not None else None

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self, full: bool = True) -> dict:
        return resume_state.checkpoint_payload(self, full)

    def save(self, name: str, full: bool = True) -> Optional[Path]:
        """Every rank calls this (the payload may reduce across ranks); only rank 0 has a run to write."""
        if self.run is None and not distributed.active():
            return None
        self.guard.check(self._interrupted)  # never save weights after an unnoticed non-finite step
        payload = self.checkpoint_payload(full)
        return save_checkpoint(payload, self.run.checkpoints / name) if self.run is not None else None

    def resume(self, path: str | Path, ckpt: Optional[dict] = None) -> None:
        """Continue from ``path`` (``ckpt``: that file already loaded onto this device)."""
        resume_state.resume(self, path, ckpt)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str, keep_predictions: bool = False):
        return evaluate_model(self.eval_runner, self.task, self.loaders[split], self.device,
                              self.cfg.train.precision, keep_predictions)

    def record(self, split: str, epoch: int, values: dict, **extra) -> dict:
        rec = {"epoch": epoch, "step": self.state.step, "split": split, **values,
               "lr": self.optimizer.param_groups[0]["lr"], **extra}
        self.metrics.append(rec)
        if self.writer is not None:
            self.writer.write(rec)
        return rec

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict, meter, do_step: bool) -> bool:
        """Forward/backward one batch; an optimizer step when ``do_step`` (then the step events run).
        False if the batch was skipped. Public: the tools that time training steps call it."""
        tc = self.cfg.train
        with autocast(self.device, tc.precision):
            out = self.task.step(self.runner, batch, train=True)
        loss, s = out["loss"], self.state
        if self.guard.deferred:  # the loss waits on the device for the next check (no host sync)
            weight = distributed.batch_weight(batch["targets"].numel(), self.device) if distributed.active() else 1.0
            self.guard.record(loss, (s.epoch, s.batch, s.step), self._interrupted)
        else:
            finite, weight = bool(torch.isfinite(loss)), 1.0
            if distributed.active():
                # every rank skips (or stops) together, or DDP would wait forever; and DDP's mean of the
                # ranks' mean losses becomes the mean over the global batch also when shards are uneven
                # the stop signal rides on the same collective: a SIGTERM that reached one rank a step
                # earlier than another still stops every rank after the same step
                world = distributed.rank_world()[1]
                n = batch["targets"].numel()
                ok, total, stopping = distributed.all_sum(float(finite), float(n), float(self._interrupted))
                finite, weight = ok == world, n * world / total
                self.guard.stop_agreed = self.guard.stop_agreed or stopping > 0
            if not finite:
                return self._nonfinite(loss)
        self.scaler.scale(loss * weight / tc.accumulate).backward()
        meter.update(out, batch)
        if do_step:
            if tc.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.step += 1
            self.schedule.apply(self.state.step)
            self.callbacks.step_end(self)
        return True

    def _nonfinite(self, loss: torch.Tensor) -> bool:
        s = self.state
        if self.cfg.train.on_nonfinite == "skip_batch":
            s.skipped_batches += 1
            self.optimizer.zero_grad(set_to_none=True)
            LOG.warning("non-finite loss %s at epoch %d batch %d: batch skipped (%d so far)",
                        loss.item(), s.epoch + 1, s.batch, s.skipped_batches)
            return False
        raise nonfinite_error(str(loss.item()), (s.epoch, s.batch, s.step), self._last_checkpoint())

    def _last_checkpoint(self) -> Optional[str]:
        last = self.run.checkpoints / "last.pt" if self.run else None
        return str(last) if last and last.exists() else None

    def _stopping(self) -> bool:
        """A stop signal arrived (under DDP: every rank has agreed on it, after the same step)."""
        return self.guard.stop_agreed if distributed.active() else self._interrupted

    def _train_epoch(self, epoch: int) -> tuple[dict, bool]:
        """Returns (train metrics, stopped_by_max_steps)."""
        tc, s = self.cfg.train, self.state
        loader = self.loaders["train"]
        meter = self.task.meter()
        self.task.start_pass(True)
        if s.train_meter and distributed.is_main():
            meter.load_state_dict(s.train_meter, self.device)
        # under DDP the checkpoint holds rank 0's carried state (e.g. its streams' RNN hidden state);
        # the other ranks restart theirs from zero after a mid-epoch resume
        if s.task_state is not None and distributed.is_main():
            self.task.load_state_dict(s.task_state, self.device)
        self.live_meter, self.seen_in_epoch = meter, 0
        n_batches = len(loader)
        self.model.train()
        t0 = time.perf_counter()
        for batch in loader.iterate(epoch, start=s.batch):
            b = s.batch
            do_step = (b + 1) % tc.accumulate == 0 or b + 1 == n_batches
            s.batch = b + 1  # before the step, so its events see this batch as done
            self.seen_in_epoch += batch["targets"].numel()  # samples, or tokens for a [B, T] LM batch
            self.train_step(batch, meter, do_step)
            if do_step:
                if tc.checkpoint_every_steps and s.step % tc.checkpoint_every_steps == 0 and s.batch < n_batches:
                    self.save("last.pt")
                if tc.max_steps and s.step >= tc.max_steps:
                    break
                if self._stopping():
                    self._stop_interrupted()
        self.guard.check(self._interrupted)  # before this epoch's weights are evaluated or saved
        seconds = time.perf_counter() - t0
        stopped = bool(tc.max_steps and s.step >= tc.max_steps and s.batch < n_batches)
        result = distributed.reduce_meter(meter).compute()
        seen = distributed.all_sum(self.seen_in_epoch)
        result.update({"seconds": round(seconds, 3), f"{self.task.unit}_per_s": round(seen / max(seconds, 1e-9), 1)})
        if s.skipped_batches:
            result["skipped_batches"] = s.skipped_batches
        return result, stopped

    def fit(self) -> dict:
        previous = install_signal_handlers(self)
        try:
            if self.run is not None:
                purge = self.state.step + 1 if self.state.step else None  # drop TB events past the checkpoint
                self.writer = MetricsWriter(self.run, self.cfg.run.tensorboard, purge_step=purge)
            return self._fit()
        except RuntimeError as e:
            lost = distributed.lost_peer(e, f"at epoch {self.state.epoch + 1}, step {self.state.step}; last "
                                            f"checkpoint: {self._last_checkpoint() or 'none written yet'}")
            if lost is None:
                raise
            raise lost from e
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.writer is not None:
                self.writer.close()
            progress = self.callback(ProgressBar)
            if progress is not None:
                progress.close()

    def _stop_interrupted(self) -> None:
        """Ctrl-C: finish the optimizer step in flight, save a resumable last.pt, then stop."""
        path = self.save("last.pt")
        where = f"; resume with: trainlab train ... train.resume=auto run.dir={self.run.path}" if path else ""
        LOG.warning("interrupted at epoch %d, step %d: saved %s%s", self.state.epoch + 1, self.state.step,
                    path, where)
        raise KeyboardInterrupt(f"interrupted; resumable checkpoint {path}")

    def _fit(self) -> dict:
        tc, s = self.cfg.train, self.state
        self.callbacks.fit_start(self, self._resumed)
        stop = s.epoch >= tc.epochs or bool(tc.max_steps and s.step >= tc.max_steps)
        while not stop:
            epoch = s.epoch
            train_metrics, stopped_early = self._train_epoch(epoch)
            stop = self._end_epoch(epoch, train_metrics, partial=stopped_early)
        result = self._final_test()
        self.callbacks.fit_end(self, result)
        return result

    def _end_epoch(self, epoch: int, train_metrics: dict, partial: bool) -> bool:
        tc, s = self.cfg.train, self.state
        self.callbacks.epoch_end(self, epoch, partial)
        self.record("train", epoch + 1, train_metrics)
        evals = {"train": train_metrics}
        splits = [sp for sp in ("valid", "test") if sp in self.loaders and (sp == "valid" or tc.eval_test)]
        for split in splits:
            evals[split], _ = self.evaluate(split)
            self.record(split, epoch + 1, evals[split])
        LOG.info("epoch %d%s: %s", epoch + 1, " (stopped at train.max_steps)" if partial else "",
                 "   ".join(f"{k} {format_metrics(self.task, v)}" for k, v in evals.items()))
        # a train.max_steps stop mid-epoch is a pause: its evaluation is logged, but the callbacks move
        # best.pt, the plateau schedule and early stopping only at epoch ends, so a resumed run replays
        # exactly what an uninterrupted one does
        stop = self.callbacks.eval_end(self, epoch, evals, partial) or partial
        if not partial:
            s.epoch, s.batch, s.train_meter, s.task_state = epoch + 1, 0, None, None
            self.live_meter = None
        stop = stop or s.epoch >= tc.epochs or bool(tc.max_steps and s.step >= tc.max_steps)
        self.save("last.pt")
        return stop

    def _final_test(self) -> dict:
        return final_test(self)
