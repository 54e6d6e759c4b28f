"""The LR range test where the API runs it: ``optim.lr=find`` before training (``resolve_lr_find``,
``record_lr_find``) and ``trainlab.lr_find`` (in ``api``); both through ``timed_range_test``."""

from __future__ import annotations

import logging
import time
from typing import Optional

from . import atomic
from .build import build_trainer
from .config import Config
from .engine import distributed
from .errors import ConfigError
from .tracking import RunDir

LOG = logging.getLogger("trainlab")


def timed_range_test(parts, *args) -> dict:
    """``engine.lr_find.lr_range_test`` on a Trainer of the built parts (start, end, steps in ``args``),
    as a dict with its wall time in seconds."""
    from .engine.lr_find import lr_range_test

    t0 = time.perf_counter()
    result = lr_range_test(build_trainer(parts), *args).to_dict()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def resolve_lr_find(cfg: Config, parts, resume) -> Optional[dict]:
    """optim.lr=find: the LR range test on the built parts (everything put back), its suggestion set as
    optim.lr, so config.yaml records the LR trained with. None when optim.lr is a number."""
    if cfg.optim.lr != "find":
        return None
    if resume is not None or distributed.active():
        raise ConfigError("optim.lr=find runs the LR range test before a fresh single-process run; for a resume "
                          "or under torchrun, run `trainlab lr-find RECIPE` and pass its optim.lr=VALUE")
    cfg.optim.lr = 1e-3  # a placeholder: the sweep sets the LR of every step
    result = timed_range_test(parts)
    if result["suggestion"] is None:
        raise ConfigError(f"optim.lr=find: the LR range test found no LR where the loss falls ({result['stopped']}); "
                          f"set optim.lr to a number")
    cfg.optim.lr = float(f"{result['suggestion']:.3g}")
    LOG.info("optim.lr=find: the LR range test suggests %g (%s, %.1f s)%s", cfg.optim.lr, result["stopped"],
             result["seconds"], f"; warning: {result['warning']}" if result["warning"] else "")
    return result


def record_lr_find(run: RunDir, result: dict, cfg: Config) -> None:
    from .analysis.lr_plot import lr_find_figure

    run.note(f"optim.lr=find -> {cfg.optim.lr:g} (LR range test: lr_find.png, lr_find.json)")
    run.write_json("lr_find.json", result)
    atomic.write_bytes(run.path / "lr_find.png", lr_find_figure(result, f"LR range test: {cfg.model.name}, "
                                                                        f"{cfg.optim.name}; optim.lr={cfg.optim.lr:g}"))
