"""The run directory: config.yaml, command.txt, env.json, metrics.jsonl, TensorBoard, log."""

from __future__ import annotations

import json
import os
import logging
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

from .. import atomic
from ..config import Config
from ..errors import ConfigError, TrainlabError
from .lock import LOCK_NAME, RunLock
from .env import environment

LOG = logging.getLogger("trainlab")


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.lock: Optional[RunLock] = None

    @classmethod
    def create(cls, cfg: Config, resuming: bool = False) -> "RunDir":
        """The run's folder, created. An explicit ``run.dir`` that already holds files is refused
        unless this run resumes it (``train.resume``), so nothing of the user's or of another run is
        overwritten; with ``train.resume=auto`` and nothing to resume it must be a trainlab run's
        folder (an earlier attempt killed before its first checkpoint). The run directory's lock
        is taken first (one writer at a time) and held until ``release``."""
        if cfg.run.dir:
            path = Path(cfg.run.dir)
            if path.exists() and not path.is_dir():
                raise ConfigError(f"run.dir={path} is a file, not a folder")
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path(cfg.run.root) / (cfg.run.name or "run") / stamp
            n = 1
            while path.exists():  # two runs started in the same second
                n += 1
                path = path.with_name(f"{stamp}-{n}")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"cannot write the run directory {path}: {e.strerror or e}; point run.dir (or "
                              f"run.root) at a writable folder with free space") from None
        run = cls(path)
        run.lock = RunLock(path).acquire()
        try:
            _check_reusable(path, cfg, resuming)
            (path / "checkpoints").mkdir(exist_ok=True)
        except BaseException:
            run.lock.release(remove=True)
            raise
        return run

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def write_start(self, cfg: Config, device, argv: list[str] | None = None) -> None:
        atomic.write_text(self.path / "config.yaml", cfg.to_yaml())
        cmd = argv if argv is not None else sys.argv
        with open(self.path / "command.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{datetime.now().isoformat(timespec='seconds')}  {shlex.join(cmd)}\n")
        self.write_json("env.json", environment(device))

    def note(self, text: str) -> None:
        """A time-stamped line in command.txt (what changed on a resume)."""
        with open(self.path / "command.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{datetime.now().isoformat(timespec='seconds')}  # {text}\n")

    def write_json(self, name: str, obj) -> Path:
        return atomic.write_text(self.path / name, json.dumps(obj, indent=2))

    def attach_log(self) -> logging.Handler:
        """train.log gets the run's INFO lines also from the Python API, where nobody set up logging
        (the logger's level is then raised to INFO for the run; ``detach_log`` puts it back)."""
        handler = logging.FileHandler(self.path / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler.setLevel(logging.INFO)
        handler.previous_level = LOG.level
        if LOG.getEffectiveLevel() > logging.INFO:
            LOG.setLevel(logging.INFO)
        LOG.addHandler(handler)
        return handler

    @staticmethod
    def detach_log(handler: logging.Handler) -> None:
        LOG.removeHandler(handler)
        LOG.setLevel(getattr(handler, "previous_level", LOG.level))
        handler.close()


TRAINLAB_FILES = {"config.yaml", "command.txt", "env.json", "task.json", "splits.json", "metrics.jsonl", "train.log",
                  "timing.json", "eval_test.json", "checkpoints", "tensorboard", "run.lock", "done.json",
                  # what the final test, lr-find, the dynamics callback, explain and report add to a run
                  "predictions.csv", "thumbnails", "token_losses.json", "lr_find.png", "lr_find.json",
                  "dynamics.jsonl", "explain", "report.html", "report.md", "report_files"}
# `trainlab sweep` opens the run's sweep.log (the train process's stdout) before the run starts,
# so like the lock it says nothing about whether the folder already holds a run
SWEEP_LOG = "sweep.log"


def _check_reusable(path: Path, cfg: Config, resuming: bool) -> None:
    found = sorted(p.name for p in path.iterdir() if p.name not in (LOCK_NAME, SWEEP_LOG))
    if not found or resuming:
        return
    foreign = [n for n in found if n not in TRAINLAB_FILES]
    if cfg.train.resume == "auto" and not foreign and (path / "command.txt").exists():
        return  # a trainlab run killed before its first checkpoint: started again from scratch
    metrics = path / "metrics.jsonl"  # opened (empty) when training starts: only its lines count
    measured = (metrics.exists() and metrics.stat().st_size > 0) or any((path / "checkpoints").glob("*.pt"))
    if not foreign and not measured:
        return  # a run that stopped before it measured anything (a bad setting, a NaN at step 5)
    shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
    what = "files that are not a trainlab run's" if foreign else "another run"
    raise ConfigError(f"run.dir={path} is not empty (it holds {what}: {shown}); nothing there is overwritten. "
                      f"Resume that run with train.resume=auto, or train into a new or empty run.dir")


class MetricsWriter:
    """One JSON line per evaluation, and the same scalars in TensorBoard."""

    def __init__(self, run: RunDir, tensorboard: bool = True, purge_step: int | None = None):
        self.file = open(run.path / "metrics.jsonl", "a", encoding="utf-8")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run.path / "tensorboard"), purge_step=purge_step or None)
            except ImportError as e:  # tensorboard is a dependency; a broken install should not stop training
                LOG.warning("TensorBoard disabled: %s", e)

    def write(self, record: dict) -> None:
        record = {"time": round(time.time(), 3), **record}
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as e:
            raise TrainlabError(f"cannot write {self.file.name}: {e.strerror or e} (disk full?). The last "
                                f"checkpoint is intact: free some space and resume with train.resume=auto") from None
        if self.tb is not None:
            split, step = record["split"], record["step"]
            for key, value in record.items():
                if key not in ("split", "step", "epoch", "time") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"{split}/{key}", value, step)
            self.tb.flush()

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:  # a full disk fails the final flush too; the error that stopped the run says so
            pass
        if self.tb is not None:
            try:
                self.tb.close()
            except OSError:
                pass


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
