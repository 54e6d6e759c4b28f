"""The last act of ``Trainer.fit``: evaluate best.pt on the test split and say which weights those are."""

from __future__ import annotations

import logging

from . import distributed
from .checkpoint import load_checkpoint, load_model_state
from .evaluate import format_metrics
from .monitoring import BestCheckpoint
from ..predictions import write_run_predictions

LOG = logging.getLogger("trainlab")


def final_test(trainer) -> dict:
    """The end of fit: the best checkpoint (or the current weights if there is none) on the test split,
    recorded with which weights they are, and the weights in training put back."""
    if "test" not in trainer.loaders:
        return {}
    best_pt = trainer.run.checkpoints / "best.pt" if trainer.run else None
    current = None
    if distributed.broadcast_object(best_pt is not None and best_pt.exists()):  # rank 0 holds the file
        current = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        if best_pt is not None:
            load_model_state(trainer.model, load_checkpoint(best_pt, trainer.device)["model"], str(best_pt))
        distributed.broadcast_module(trainer.model)
    result, meter = trainer.evaluate("test", keep_predictions=True)
    details = meter.details(trainer.meta.get("class_names"))
    best = trainer.callback(BestCheckpoint)
    best_epoch = trainer.best_epoch
    which = {"best_epoch": best_epoch, "checkpoint": "best.pt" if current is not None else "last",
             "weights": best.describe() if best is not None and current is not None else "last weights"}
    named = trainer.meta.get("split_names", {}).get("test")  # what "test" is, where the data says
    if named:
        which["split_name"] = named
    trainer.record("test", best_epoch or trainer.state.epoch, result, **which)
    if best is not None and best.best_step is not None and best_epoch is None:
        which["best_step"] = best.best_step  # not in metrics.jsonl, where numbers are metrics
    if trainer.run is not None:
        trainer.run.write_json("eval_test.json", {"split": "test", **result, **details, **which})
        write_run_predictions(trainer.run.path, meter, trainer.loaders["test"], trainer.meta.get("class_names"),
                              trainer.meta.get("itos"))
    _hparams(trainer, result)
    if current is not None:
        trainer.model.load_state_dict(current)
    LOG.info("test%s (%s): %s", f" = {named}" if named else "", which["weights"],
             format_metrics(trainer.task, result))
    return result


def _hparams(trainer, result: dict) -> None:
    """TensorBoard's HParams view: the run's numeric, text and flag settings with its test metrics, so a
    sweep's runs line up there."""
    tb = getattr(trainer.writer, "tb", None)
    if tb is None:
        return
    flat = {}
    for section, values in trainer.cfg.to_dict().items():
        for k, v in (values or {}).items() if isinstance(values, dict) else ():
            if isinstance(v, (int, float, str, bool)):
                flat[f"{section}.{k}"] = v
    metrics = {f"hparam/test_{k}": v for k, v in result.items() if isinstance(v, float) and k in trainer.task.metrics}
    try:
        tb.add_hparams(flat, metrics, run_name=".")
        tb.flush()
    except Exception as e:  # noqa: BLE001 - TensorBoard must never fail a finished run
        LOG.warning("TensorBoard hparams not written: %s", e)
