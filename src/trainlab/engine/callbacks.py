"""The Trainer's one extension point: a small fixed set of events.

    fit start        on_fit_start(trainer, resumed)         once, after a resume has been loaded
    after a step     on_step_end(trainer)                   after every optimizer step
    epoch end        on_epoch_end(trainer, epoch, partial)  before the epoch's evaluations;
                                                            partial: stopped by train.max_steps mid-epoch
    after evaluation on_eval_end(trainer, epoch, evals, partial) -> True asks the loop to stop
    fit end          on_fit_end(trainer, result)            after the final test evaluation

A callback with state returns it from ``state_dict()`` (anything ``torch.save`` keeps with
weights_only loading: tensors, numbers, strings, lists, dicts) and takes it back in
``load_state_dict``; the Trainer saves it in every last.pt under the callback's ``name``, so a
resumed run continues it exactly. Callbacks run in the order given; the built-in ones that
come from settings (Lookahead, best checkpoint, early stopping, plateau, progress) run first.

    class CountSteps(Callback):
        name = "count_steps"
        def __init__(self): self.steps = 0
        def on_step_end(self, trainer): self.steps += 1
        def state_dict(self): return {"steps": self.steps}
        def load_state_dict(self, state): self.steps = state["steps"]

    trainlab.train("recipes/mnist.yaml", callbacks=[CountSteps()])
    # or in a recipe, once registered with @CALLBACKS.register("count_steps"):
    #   train: {callbacks: [count_steps, {name: my_module:MyCallback, every: 10}]}
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import time
from typing import Any, Optional

from ..errors import ConfigError
from ..registry import CALLBACKS

LOG = logging.getLogger("trainlab")


class Callback:
    """Base class: every event is a no-op; override the ones you need."""

    #: the key of this callback's state in last.pt; unique among a run's callbacks
    name: str = ""

    def on_fit_start(self, trainer, resumed: bool) -> None: ...

    def on_step_end(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, epoch: int, partial: bool) -> None: ...

    def on_eval_end(self, trainer, epoch: int, evals: dict, partial: bool) -> Optional[bool]: ...

    def on_fit_end(self, trainer, result: dict) -> None: ...

    def state_dict(self) -> Optional[dict]:
        """None: nothing to save (the default)."""
        return None

    def load_state_dict(self, state: dict) -> None: ...


def callback_name(cb: Callback) -> str:
    """The callback's ``name``, else its class name in snake case."""
    return cb.name or re.sub(r"(?<!^)(?=[A-Z])", "_", type(cb).__name__).lower()


def check_names(callbacks: list) -> None:
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ConfigError(f"callback {cb!r} is not a trainlab.Callback: subclass "
                              f"trainlab.engine.callbacks.Callback and override its on_* methods")
    names = [callback_name(cb) for cb in callbacks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two callbacks share the name {', '.join(twice)}: each callback's state is saved "
                          f"under its name, so give them distinct `name` attributes")


class CallbackList:
    """Dispatches each event to every callback, in order."""

    def __init__(self, callbacks: list):
        check_names(callbacks)
        self.items = list(callbacks)

    def __iter__(self):
        return iter(self.items)

    def fit_start(self, trainer, resumed: bool) -> None:
        for cb in self.items:
            cb.on_fit_start(trainer, resumed)

    def step_end(self, trainer) -> None:
        for cb in self.items:
            cb.on_step_end(trainer)

    def epoch_end(self, trainer, epoch: int, partial: bool) -> None:
        for cb in self.items:
            cb.on_epoch_end(trainer, epoch, partial)

    def eval_end(self, trainer, epoch: int, evals: dict, partial: bool) -> bool:
        stop = False
        for cb in self.items:  # every callback sees the evaluation, even after one asked to stop
            stop = bool(cb.on_eval_end(trainer, epoch, evals, partial)) or stop
        return stop

    def fit_end(self, trainer, result: dict) -> None:
        for cb in self.items:
            cb.on_fit_end(trainer, result)

    def state_dict(self) -> dict:
        out = {}
        for cb in self.items:
            state = cb.state_dict()
            if state is not None:
                out[callback_name(cb)] = state
        return out

    def load_state_dict(self, states: dict, path: str) -> None:
        """A callback that has state but finds none in the checkpoint is refused: resuming it
        from scratch would silently differ from the uninterrupted run."""
        for cb in self.items:
            name = callback_name(cb)
            if cb.state_dict() is None:
                continue
            if name not in states:
                have = ", ".join(sorted(states)) or "none"
                raise ConfigError(
                    f"{path} cannot resume this run: it holds no state for callback '{name}', which this run "
                    f"uses (callback states in the checkpoint: {have}). Resume with the callbacks and settings "
                    f"of the run that wrote it, or start a new run")
            cb.load_state_dict(states[name])


# ---------------------------------------------------------------------- the built-in callbacks
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


# ---------------------------------------------------------------------- building them
def from_spec(spec: Any, key: str = "train.callbacks") -> Callback:
    """One ``train.callbacks`` entry: a registered name, 'module:Class', or a mapping with ``name``
    and keyword arguments."""
    kwargs: dict = {}
    if isinstance(spec, dict):
        if "name" not in spec:
            raise ConfigError(f"{key}: entry {spec!r} needs a 'name' (a registered callback or 'module:Class')")
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        spec = spec["name"]
    if not isinstance(spec, str):
        raise ConfigError(f"{key}: entry {spec!r} must be a name or a mapping with 'name'")
    if ":" in spec:
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"{key}: cannot import callback '{spec}' ({e}); the module must be importable "
                              f"(on PYTHONPATH or in the working folder)") from None
    else:
        factory = CALLBACKS.get(spec)
    try:
        cb = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{key}: callback '{spec}' does not take {kwargs}: {e}") from None
    if not isinstance(cb, Callback):
        raise ConfigError(f"{key}: '{spec}' made {type(cb).__name__}, not a trainlab Callback")
    return cb


def check_spec(spec: Any, key: str = "train.callbacks") -> None:
    """Config validation: the shape of an entry and, for a registered name, that it exists."""
    if isinstance(spec, dict) and "name" not in spec:
        raise ConfigError(f"{key}: entry {spec!r} needs a 'name' (a registered callback or 'module:Class')")
    name = spec.get("name") if isinstance(spec, dict) else spec
    if not isinstance(name, str):
        raise ConfigError(f"{key}: entry {spec!r} must be a name or a mapping with 'name'")
    if ":" not in name:
        CALLBACKS.check(name, key)
