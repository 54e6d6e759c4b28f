"""One writer per run directory: an exclusive lock held for the life of a run (and of a resume).

The lock is ``fcntl.flock`` on ``run.lock`` in the run directory: the kernel releases it when
the holder exits or is killed, so a stale lock left by a killed process is simply taken over
(and said so). The file names the holder (pid, host, start time), so a second writer is
refused naming who holds it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

LOG = logging.getLogger("trainlab")
LOCK_NAME = "run.lock"


class RunLockedError(ConfigError):
    """Another process is writing this run directory."""


class RunLock:
    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: Optional[int] = None
        self.created = False

    def acquire(self) -> "RunLock":
        if self._fd is not None:
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before (documented)
            return self
        self.created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})" if holder \
                else "another process"
            raise RunLockedError(f"run directory {self.path.parent} is in use by {who}: one run writes a run "
                                 f"directory at a time. Wait for it to finish, or train into another run.dir") from None
        stale = _read_holder(fd)
        if stale and stale.get("pid") != os.getpid():
            LOG.info("took over the lock of %s: process %s on %s is gone", self.path.parent, stale.get("pid"),
                     stale.get("host"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        self._fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        """``remove``: also delete the lock file if this lock created it (a refused run leaves no trace)."""
        if self._fd is None:
            return
        if remove and self.created:
            self.path.unlink(missing_ok=True)
        try:  # the file stays (unlinking it could let two later writers lock two different files)
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
