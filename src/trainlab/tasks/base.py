"""The task contract: what the Trainer, evaluation, reports and sweeps may ask of a task.

A task turns a batch into ``{"loss", "outputs"}`` and owns its metrics. It declares every metric
its meter computes and whether each is better high (``"max"``) or low (``"min"``); best.pt, early
stopping, the plateau schedule, sweep rankings and reports read that declaration (recorded in
the run directory as ``task.json``), never a guess from a metric's name.

    @TASKS.register("regression")
    class Regression(Task):
        metrics = {"loss": "min", "mae": "min"}
        primary_metric = "mae"

        def step(self, model, batch, train):
            pred = model(batch["inputs"]).squeeze(1)
            return {"loss": F.mse_loss(pred, batch["targets"]), "outputs": pred}

        def meter(self, keep_predictions=False):
            return MaeMeter()     # update(out, batch), compute() -> {"loss", "mae", "samples"}, ...
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ConfigError

DIRECTIONS = ("max", "min")


class Task:
    """Base class with the defaults of every optional part of the contract."""

    #: every metric the meter's ``compute()`` returns (besides the sample/token count) -> "max" | "min"
    metrics: dict[str, str] = {"loss": "min"}
    #: the headline metric (report tables, ``trainlab eval``); one of ``metrics``
    primary_metric: str = "loss"
    #: metrics shown in the per-epoch log line after the loss
    log_metrics: tuple[str, ...] = ()
    #: what the throughput counts: "samples" or "tokens"; the meter's count key has this name
    unit: str = "samples"

    def __init__(self, cfg, num_classes: int):
        self.cfg = cfg
        self.num_classes = num_classes

    # -- required ------------------------------------------------------------------------------
    def step(self, model, batch: dict, train: bool) -> dict:
        """One batch -> {"loss": scalar tensor, "outputs": tensor}; ``train`` tells which pass."""
        raise NotImplementedError

    def meter(self, keep_predictions: bool = False):
        """A fresh meter: ``update(out, batch)``, ``compute() -> dict``, ``state_dict()``,
        ``load_state_dict(state, device)``, ``details(class_names) -> dict``."""
        raise NotImplementedError

    # -- optional, with defaults ---------------------------------------------------------------
    def start_pass(self, train: bool) -> None:
        """Called at the start of every training or evaluation pass (a language model resets its
        carried hidden state here)."""

    def state_dict(self) -> Optional[dict]:
        """State the task carries across batches (None: nothing). Saved in a mid-epoch last.pt."""
        return None

    def load_state_dict(self, state: dict, device) -> None:
        """Restore what ``state_dict`` returned, on ``device``."""

    # -- the metric declaration ----------------------------------------------------------------
    @classmethod
    def direction(cls, metric: str) -> str:
        """'max' or 'min' for one of this task's metrics (``valid.acc1`` or ``acc1``)."""
        name = metric.split(".", 1)[1] if "." in metric else metric
        if name not in cls.metrics:
            raise ConfigError(f"'{metric}': '{name}' is not a metric of task {cls.__name__} "
                              f"(have: {', '.join(cls.metrics)})")
        return cls.metrics[name]

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The declaration as plain data, for the run directory's task.json and checkpoints."""
        return {"metrics": dict(cls.metrics), "primary_metric": cls.primary_metric, "unit": cls.unit}


def check_task_class(cls) -> None:
    """Called on registration: a task's declaration must be complete and consistent."""
    bad = {k: v for k, v in cls.metrics.items() if v not in DIRECTIONS}
    if bad:
        raise ValueError(f"task {cls.__name__}: metric directions must be 'max' or 'min', got {bad}")
    for name in (cls.primary_metric, *cls.log_metrics):
        if name not in cls.metrics:
            raise ValueError(f"task {cls.__name__}: '{name}' is named but not declared in metrics")
