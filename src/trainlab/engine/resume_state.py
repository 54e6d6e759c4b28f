"""What a Trainer's checkpoint holds and how a Trainer continues from one: the weights, config and
meta of every checkpoint; for a resumable one (last.pt) also the optimizer, schedule, grad scaler,
RNG, loop position, carried task state and every callback's state, so a resumed run replays exactly
what an uninterrupted run does."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from . import distributed
from ._loop_state import TrainState, callback_states, rng_state, set_rng_state
from .checkpoint import load_checkpoint, load_model_state, remove_stale_temp_files

LOG = logging.getLogger("trainlab")
RESUMABLE = ("optimizer", "schedule", "rng", "trainer")  # keys a checkpoint needs to resume from


def checkpoint_payload(trainer, full: bool = True) -> dict:
    """The checkpoint of ``trainer`` now; ``full``: resumable (last.pt), else weights only (best.pt)."""
    if trainer.live_meter is not None:  # mid-epoch: captured here, not every step (each capture syncs)
        # all ranks' sums: on resume rank 0 carries them and the other ranks start from zero
        trainer.state.train_meter = distributed.reduce_meter(trainer.live_meter).state_dict()
        trainer.state.task_state = trainer.task.state_dict()
    payload = {"model": trainer.model.state_dict(), "config": trainer.cfg.to_dict(), "meta": trainer.meta,
               "trainer": asdict(trainer.state)}
    if full:
        payload.update(optimizer=trainer.optimizer.state_dict(), schedule=trainer.schedule.state_dict(),
                       scaler=trainer.scaler.state_dict(), rng=rng_state(),
                       callbacks=trainer.callbacks.state_dict())
    return payload


def resume(trainer, path: str | Path, ckpt: Optional[dict] = None) -> None:
    """Continue ``trainer`` from ``path`` (``ckpt``: that file already loaded onto its device)."""
    if trainer.run is not None:
        for p in remove_stale_temp_files(trainer.run.checkpoints):
            LOG.info("removed %s, the unfinished write of a killed run", p.name)
    ckpt = ckpt if ckpt is not None else load_checkpoint(path, map_location=trainer.device)
    for key in RESUMABLE:
        if key not in ckpt:
            raise ConfigError(f"{path} cannot resume training: it has no '{key}' state "
                              f"(best.pt holds weights only; resume from last.pt)")
    load_model_state(trainer.model, ckpt["model"], str(path))
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.schedule.load_state_dict(ckpt["schedule"])
    trainer.scaler.load_state_dict(ckpt["scaler"])
    trainer_state = dict(ckpt["trainer"])
    trainer.callbacks.load_state_dict(callback_states(ckpt, trainer_state), str(path))
    trainer.state = TrainState(**trainer_state)
    set_rng_state(ckpt["rng"])
    trainer._resumed = True
    LOG.info("resumed from %s at epoch %d, batch %d, step %d", path, trainer.state.epoch + 1,
             trainer.state.batch, trainer.state.step)
