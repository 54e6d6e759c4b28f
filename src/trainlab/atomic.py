"""Atomic file writes: every file trainlab writes that a later step reads (reports, CSVs, JSON,
configs, caches) is written to a temporary file beside it and renamed over the target, so a
reader sees the old file or the new one, never half of one, and a failed write (a full disk,
a kill) leaves the old file and no temporary behind. Checkpoints add an fsync
(``engine/checkpoint.py``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
                ) -> Iterator[IO]:
    """``with atomic_open(p) as fh: fh.write(...)``: ``p`` appears complete when the block ends."""
    path = Path(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else encoding,
                       newline=None if binary else newline) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; an output gets the usual file mode
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def savefig(fig, path: str | Path, **kw) -> Path:
    """matplotlib's savefig, atomically (the format from the file name)."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".") or "png", **kw)
    return path


def umask() -> int:
    """The process's umask (reading it means setting it: put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
