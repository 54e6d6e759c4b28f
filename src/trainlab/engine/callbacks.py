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
