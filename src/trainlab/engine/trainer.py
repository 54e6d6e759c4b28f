"""The one training loop. It knows batches, losses and metrics dicts, never images or words.

``Trainer.fit`` runs epochs of optimizer steps with autocast, accumulation and clipping,
evaluates after each epoch, keeps ``last.pt`` (resumable at any step boundary) and
``best.pt`` (on ``train.monitor``), stops early on patience, and ends by evaluating the best
checkpoint on the test split. A resumed run replays exactly what an uninterrupted run does:
batches are functions of (seed, epoch, batch) and the RNG state travels in the checkpoint.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError, NonFiniteLossError
from ..tracking import MetricsWriter, RunDir
from . import distributed
from .checkpoint import load_checkpoint, load_model_state, remove_stale_temp_files, save_checkpoint
from .device import autocast
from .evaluate import evaluate_model, format_metrics, start_pass, throughput_unit
from .optim import build_optimizer
from .schedules import Schedule

LOG = logging.getLogger("trainlab")


@dataclass
class TrainState:
    epoch: int = 0          # epoch in progress (0-based)
    batch: int = 0          # next batch index within that epoch
    step: int = 0           # optimizer steps taken
    best: Optional[float] = None
    best_epoch: Optional[int] = None
    bad_evals: int = 0
    skipped_batches: int = 0
    train_meter: Optional[dict] = None  # running sums of a partly done epoch
    task_state: Optional[dict] = None   # the task's carried state in a partly done epoch (e.g. RNN hidden)


class Lookahead:
    """airbench's Lookahead: every ``every`` optimizer steps an average of the model's float state
    (weights and batch-norm statistics) moves towards the model, ``avg += (1 - rho) (model - avg)``,
    and is copied back into it, with ``rho = decay**every * (step / total)**3``: the model moves
    freely early on and is averaged strongly at the end. The average is also copied back at each
    epoch end, so evaluations and checkpoints see it. Its state travels in last.pt."""

    def __init__(self, every: int, decay: float, start_step: int, total_steps: int):
        self.every, self.decay, self.start, self.total = every, decay, start_step, max(1, total_steps)
        self.avg: Optional[dict] = None

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


def monitor_mode(metric: str) -> str:
    return "min" if metric.split(".")[-1] in ("loss", "ppl", "perplexity", "error") else "max"


class Trainer:
    def __init__(self, cfg: Config, model: nn.Module, task, loaders: dict, device: torch.device,
                 run: Optional[RunDir] = None, meta: Optional[dict] = None):
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
        self.mode = monitor_mode(tc.monitor)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        train_batches = len(loaders["train"])
        self.steps_per_epoch = max(1, math.ceil(train_batches / tc.accumulate))
        total = self.steps_per_epoch * tc.epochs
        self.total_steps = min(total, tc.max_steps) if tc.max_steps else total
        self.schedule = Schedule(self.optimizer, cfg.schedule, cfg.optim.lr, self.steps_per_epoch,
                                 self.total_steps, self.mode)
        self.scaler = torch.amp.GradScaler(device.type, enabled=tc.precision == "fp16")
        self.lookahead = Lookahead(tc.lookahead_every, tc.lookahead_decay,
                                   round(tc.lookahead_start_epoch * self.steps_per_epoch),
                                   self.total_steps) if tc.lookahead_every else None
        self.state = TrainState()
        self.metrics: list[dict] = []
        self.writer: Optional[MetricsWriter] = None
        self._interrupted = False
        self._live_meter = None  # the meter of an epoch in progress; read only when a checkpoint is written
        self.first_step_s: Optional[float] = None  # wall time of this process's first step (compile, warm-up)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self, full: bool = True) -> dict:
        if self._live_meter is not None:  # mid-epoch: captured here, not every step (each capture syncs)
            # all ranks' sums: on resume rank 0 carries them and the other ranks start from zero
            self.state.train_meter = distributed.reduce_meter(self._live_meter).state_dict()
            task_state = getattr(self.task, "state_dict", None)
            self.state.task_state = task_state() if task_state is not None else None
        payload = {"model": self.model.state_dict(), "config": self.cfg.to_dict(), "meta": self.meta,
                   "trainer": asdict(self.state)}
        if full:
            payload.update(optimizer=self.optimizer.state_dict(), schedule=self.schedule.state_dict(),
                           scaler=self.scaler.state_dict(), rng=_rng_state())
            if self.lookahead is not None:
                payload["lookahead"] = self.lookahead.state_dict()
        return payload

    def save(self, name: str, full: bool = True) -> Optional[Path]:
        """Every rank calls this (the payload may reduce across ranks); only rank 0 has a run to write."""
        if self.run is None and not distributed.active():
            return None
        payload = self.checkpoint_payload(full)
        return save_checkpoint(payload, self.run.checkpoints / name) if self.run is not None else None

    def resume(self, path: str | Path) -> None:
        if self.run is not None:
            for p in remove_stale_temp_files(self.run.checkpoints):
                LOG.info("removed %s, the unfinished write of a killed run", p.name)
        ckpt = load_checkpoint(path, map_location=self.device)
        for key in ("optimizer", "schedule", "rng", "trainer"):
            if key not in ckpt:
                raise ConfigError(f"{path} cannot resume training: it has no '{key}' state "
                                  f"(best.pt holds weights only; resume from last.pt)")
        load_model_state(self.model, ckpt["model"], str(path))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.lookahead is not None:
            if "lookahead" not in ckpt:
                raise ConfigError(f"{path} was written without train.lookahead_every; resume it with "
                                  f"the same setting (train.lookahead_every=0)")
            self.lookahead.load_state_dict(ckpt["lookahead"])
        self.state = TrainState(**ckpt["trainer"])
        _set_rng_state(ckpt["rng"])
        LOG.info("resumed from %s at epoch %d, batch %d, step %d", path, self.state.epoch + 1,
                 self.state.batch, self.state.step)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str, keep_predictions: bool = False):
        return evaluate_model(self.eval_runner, self.task, self.loaders[split], self.device,
                              self.cfg.train.precision, keep_predictions)

    def _record(self, split: str, epoch: int, values: dict, **extra) -> dict:
        rec = {"epoch": epoch, "step": self.state.step, "split": split, **values,
               "lr": self.optimizer.param_groups[0]["lr"], **extra}
        self.metrics.append(rec)
        if self.writer is not None:
            self.writer.write(rec)
        return rec

    # ------------------------------------------------------------------ training
    def _train_step(self, batch: dict, meter, do_step: bool) -> bool:
        """Forward/backward one batch; an optimizer step when ``do_step``. False if skipped."""
        tc = self.cfg.train
        with autocast(self.device, tc.precision):
            out = self.task.step(self.runner, batch, train=True)
        loss = out["loss"]
        finite, weight = bool(torch.isfinite(loss)), 1.0
        if distributed.active():
            # every rank skips (or stops) together, or DDP would wait forever; and DDP's mean of the
            # ranks' mean losses becomes the mean over the global batch also when shards are uneven
            world = distributed.rank_world()[1]
            n = batch["targets"].numel()
            ok, total = distributed.all_sum(float(finite), float(n))
            finite, weight = ok == world, n * world / total
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
            if self.lookahead is not None:
                self.lookahead.after_step(self.model, self.state.step)
        return True

    def _nonfinite(self, loss: torch.Tensor) -> bool:
        s = self.state
        if self.cfg.train.on_nonfinite == "skip_batch":
            s.skipped_batches += 1
            self.optimizer.zero_grad(set_to_none=True)
            LOG.warning("non-finite loss %s at epoch %d batch %d: batch skipped (%d so far)",
                        loss.item(), s.epoch + 1, s.batch, s.skipped_batches)
            return False
        last = self.run.checkpoints / "last.pt" if self.run else None
        where = f"last good checkpoint: {last}" if last and last.exists() else "no checkpoint written yet"
        raise NonFiniteLossError(
            f"loss became {loss.item()} at epoch {s.epoch + 1}, batch {s.batch}, step {s.step}; {where}. "
            f"Lower optim.lr, set train.grad_clip, or train.on_nonfinite=skip_batch")

    def _train_epoch(self, epoch: int, bar) -> tuple[dict, bool]:
        """Returns (train metrics, stopped_by_max_steps)."""
        tc, s = self.cfg.train, self.state
        loader = self.loaders["train"]
        meter = self.task.meter()
        start_pass(self.task, train=True)
        if s.train_meter and distributed.is_main():
            meter.load_state_dict(s.train_meter, self.device)
        # under DDP the checkpoint holds rank 0's carried state (e.g. its streams' RNN hidden state);
        # the other ranks restart theirs from zero after a mid-epoch resume
        if s.task_state is not None and hasattr(self.task, "load_state_dict") and distributed.is_main():
            self.task.load_state_dict(s.task_state, self.device)
        self._live_meter = meter
        unit = throughput_unit(self.task)
        n_batches = len(loader)
        self.model.train()
        t0 = time.perf_counter()
        seen = 0
        for batch in loader.iterate(epoch, start=s.batch):
            b = s.batch
            do_step = (b + 1) % tc.accumulate == 0 or b + 1 == n_batches
            self._train_step(batch, meter, do_step)
            if self.first_step_s is None:
                self.first_step_s = round(time.perf_counter() - t0, 3)
            s.batch = b + 1
            seen += batch["targets"].numel()  # samples, or tokens for a [B, T] language-model batch
            if bar is not None:
                bar.update(1)
                if s.batch % tc.log_every_steps == 0 or s.batch == n_batches:
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix({"loss": f"{meter.compute()['loss']:.4f}", f"{unit}_s": f"{rate:,.0f}"})
            if do_step:
                if tc.checkpoint_every_steps and s.step % tc.checkpoint_every_steps == 0 and s.batch < n_batches:
                    self.save("last.pt")
                if tc.max_steps and s.step >= tc.max_steps:
                    break
                if self._interrupted:
                    self._stop_interrupted()
        seconds = time.perf_counter() - t0
        stopped = bool(tc.max_steps and s.step >= tc.max_steps and s.batch < n_batches)
        result = distributed.reduce_meter(meter).compute()
        seen = distributed.all_sum(seen)
        result.update({"seconds": round(seconds, 3), f"{unit}_per_s": round(seen / max(seconds, 1e-9), 1)})
        if s.skipped_batches:
            result["skipped_batches"] = s.skipped_batches
        return result, stopped

    def _after_eval(self, epoch: int, evals: dict) -> bool:
        """Best checkpoint, plateau and early stopping. Returns True when training should stop."""
        s, tc = self.state, self.cfg.train
        value = evals[self.monitor_split].get(self.monitor_key)
        if value is None:
            raise ConfigError(f"train.monitor={tc.monitor}: '{self.monitor_key}' is not a metric of this task "
                              f"(have: {', '.join(k for k in evals[self.monitor_split] if k not in ('samples', 'tokens'))})")
        self.schedule.observe(value)
        improved = value == value and (s.best is None or (value > s.best if self.mode == "max" else value < s.best))
        if improved:
            s.best, s.best_epoch, s.bad_evals = value, epoch + 1, 0
            self.save("best.pt", full=False)
        else:
            s.bad_evals += 1
        patience = tc.early_stopping_patience
        if patience is not None and s.bad_evals >= patience:
            LOG.info("early stopping: %s did not improve for %d evaluation(s); best %.4f at epoch %s",
                     tc.monitor, s.bad_evals, s.best, s.best_epoch)
            return True
        return False

    def fit(self) -> dict:
        previous = _install_sigint(self)
        try:
            if self.run is not None:
                purge = self.state.step + 1 if self.state.step else None  # drop TB events past the checkpoint
                self.writer = MetricsWriter(self.run, self.cfg.run.tensorboard, purge_step=purge)
            return self._fit()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if self.writer is not None:
                self.writer.close()

    def _stop_interrupted(self) -> None:
        """Ctrl-C: finish the optimizer step in flight, save a resumable last.pt, then stop."""
        path = self.save("last.pt")
        where = f"; resume with: trainlab train ... train.resume=auto run.dir={self.run.path}" if path else ""
        LOG.warning("interrupted at epoch %d, step %d: saved %s%s", self.state.epoch + 1, self.state.step,
                    path, where)
        raise KeyboardInterrupt(f"interrupted; resumable checkpoint {path}")

    def _fit(self) -> dict:
        tc, s = self.cfg.train, self.state
        bar = _progress(self.cfg, len(self.loaders["train"]))
        stop = s.epoch >= tc.epochs or bool(tc.max_steps and s.step >= tc.max_steps)
        try:
            while not stop:
                epoch = s.epoch
                if bar is not None:
                    bar.reset(total=len(self.loaders["train"]))
                    bar.update(s.batch)
                    bar.set_description(f"epoch {epoch + 1}/{tc.epochs}")
                train_metrics, stopped_early = self._train_epoch(epoch, bar)
                stop = self._end_epoch(epoch, train_metrics, partial=stopped_early)
        finally:
            if bar is not None:
                bar.close()
        return self._final_test()

    def _end_epoch(self, epoch: int, train_metrics: dict, partial: bool) -> bool:
        tc, s = self.cfg.train, self.state
        if self.lookahead is not None and not partial:
            self.lookahead.end_epoch(self.model)
        self._record("train", epoch + 1, train_metrics)
        evals = {"train": train_metrics}
        splits = [sp for sp in ("valid", "test") if sp in self.loaders and (sp == "valid" or tc.eval_test)]
        for split in splits:
            evals[split], _ = self.evaluate(split)
            self._record(split, epoch + 1, evals[split])
        LOG.info("epoch %d%s: %s", epoch + 1, " (stopped at train.max_steps)" if partial else "",
                 "   ".join(f"{k} {format_metrics(self.task, v)}" for k, v in evals.items()))
        # a train.max_steps stop mid-epoch is a pause: its evaluation is logged, but best.pt, the
        # plateau schedule and early stopping move only at epoch ends, so a resumed run replays
        # exactly what an uninterrupted one does
        stop = partial or self._after_eval(epoch, evals)
        if not partial:
            s.epoch, s.batch, s.train_meter, s.task_state = epoch + 1, 0, None, None
            self._live_meter = None
        stop = stop or s.epoch >= tc.epochs or bool(tc.max_steps and s.step >= tc.max_steps)
        self.save("last.pt")
        return stop

    def _final_test(self) -> dict:
        """Evaluate the best checkpoint (or the current weights if none) on the test split."""
        if "test" not in self.loaders:
            return {}
        best = self.run.checkpoints / "best.pt" if self.run else None
        current = None
        if distributed.broadcast_object(best is not None and best.exists()):  # rank 0 holds the file
            current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if best is not None:
                load_model_state(self.model, load_checkpoint(best, self.device)["model"], str(best))
            distributed.broadcast_module(self.model)
        result, meter = self.evaluate("test", keep_predictions=True)
        details = meter.details(self.meta.get("class_names"))
        self._record("test", self.state.best_epoch or self.state.epoch, result,
                     best_epoch=self.state.best_epoch, checkpoint="best.pt" if current is not None else "last")
        if self.run is not None:
            self.run.write_json("eval_test.json", {"split": "test", **result, **details,
                                                   "best_epoch": self.state.best_epoch})
        if current is not None:
            self.model.load_state_dict(current)
        LOG.info("test (best epoch %s): %s", self.state.best_epoch, format_metrics(self.task, result))
        return result


def _install_sigint(trainer: Trainer):
    """First Ctrl-C asks the loop to stop at the next step boundary; a second one kills at once."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if trainer._interrupted:
            raise KeyboardInterrupt
        trainer._interrupted = True
        LOG.warning("Ctrl-C: stopping after this step and saving a checkpoint (press again to abort)")

    return signal.signal(signal.SIGINT, handler)


def _progress(cfg: Config, total: int):
    if not cfg.run.progress or not distributed.is_main():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", dynamic_ncols=True, leave=False, disable=None)  # off when not a TTY


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda"]])
