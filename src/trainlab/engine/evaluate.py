"""The one evaluation loop, shared by the Trainer, ``trainlab eval`` and ``trainlab diff``."""

from __future__ import annotations

import time

import torch
from torch import nn

from .device import autocast
from .distributed import reduce_meter


@torch.no_grad()
def evaluate_model(model: nn.Module, task, loader, device: torch.device, precision: str = "fp32",
                   keep_predictions: bool = False):
    """One pass over ``loader`` in eval mode -> (metrics dict, meter with optional predictions)."""
    model.eval()
    meter = task.meter(keep_predictions)
    start_pass(task, train=False)
    t0 = time.perf_counter()
    for batch in loader.iterate(0):
        with autocast(device, precision):
            out = task.step(model, batch, train=False)
        meter.update(out, batch)
    meter = reduce_meter(meter)  # under torchrun each rank saw its shard: sum them, once each
    result = meter.compute()
    seconds = time.perf_counter() - t0
    unit = throughput_unit(task)
    result.update({"seconds": round(seconds, 3), f"{unit}_per_s": round(result[unit] / max(seconds, 1e-9), 1)})
    return result, meter


def predict(model: nn.Module, task, loader, device: torch.device, precision: str = "fp32") -> dict:
    """Per-sample predictions over ``loader``: the task meter's ``predictions()`` (for classification
    ``index``, ``target``, ``pred``, ``probs``), joined to the data by ``index``, not by position."""
    _, meter = evaluate_model(model, task, loader, device, precision, keep_predictions=True)
    pred = meter.predictions() if hasattr(meter, "predictions") else {}
    if "probs" not in pred:  # a language model keeps per-token losses, not per-sample classes
        raise TypeError(f"task {type(task).__name__} keeps no per-sample class predictions")
    return pred


def throughput_unit(task) -> str:
    """What a task counts in its throughput: 'samples' (images) or e.g. 'tokens' (language models)."""
    return task.unit


def start_pass(task, train: bool) -> None:
    """The task's hook at the start of every pass (a language model resets its carried state)."""
    task.start_pass(train)


def format_metrics(task, values: dict) -> str:
    """'loss 1.2345 acc1 0.9000' with the metrics the task names in ``log_metrics``."""
    keys = [k for k in task.log_metrics if k != "loss"]
    return "  ".join([f"loss {values.get('loss', float('nan')):.4f}"] +
                     [f"{k} {values[k]:.4f}" for k in keys if k in values])
