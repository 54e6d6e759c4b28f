"""The decoded cache on disk: a raw uint8 file memory-mapped copy-on-write, and a JSON file with its
shape, the kept and skipped files, and a blake2b of the data. It is verified on open (a
truncated, zeroed or edited cache is rebuilt) and written through temp files, so a full disk or a
kill leaves either the old cache or none, and no temp file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

LOG = logging.getLogger("trainlab")


def open_memmap(path: Path, shape) -> torch.Tensor:
    arr = np.memmap(path, dtype=np.uint8, mode="c", shape=tuple(shape))  # copy-on-write: never alters the file
    return torch.from_numpy(arr)


def _digest(path: Path) -> str:
    """blake2b of the whole file (about 1 GB/s): a truncated, zeroed or edited cache is detected."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(8 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_array(arr: np.ndarray, path: Path) -> None:
    arr.tofile(path)


def verified(data: Path, meta: Path) -> Optional[dict]:
    """The cache's metadata if the cache is whole and unchanged; None (after saying why) otherwise."""
    if not (data.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        expected = int(np.prod(info["shape"]))
        problem = None
        if data.stat().st_size != expected:
            problem = f"{data.stat().st_size:,} bytes instead of {expected:,}"
        elif info.get("blake2b") != _digest(data):
            problem = "its contents changed since it was written" if info.get("blake2b") else "no checksum"
    except (OSError, ValueError, KeyError, TypeError) as e:
        problem = f"unreadable metadata ({e})"
    if problem is None:
        return info
    LOG.warning("decoded cache %s is damaged (%s): decoding the files again", data, problem)
    return None


def write_cache(images: torch.Tensor, keep, skipped, lengths, data: Path, meta: Path) -> None:
    tmp, meta_tmp = (p.with_name(f"{p.name}.tmp{os.getpid()}") for p in (data, meta))
    try:
        data.parent.mkdir(parents=True, exist_ok=True)
        _write_array(images.numpy(), tmp)
        digest = _digest(tmp)
        meta_tmp.write_text(json.dumps({"shape": list(images.shape), "kept": keep, "skipped": skipped,
                                        "lengths": lengths, "blake2b": digest}), encoding="utf-8")
        os.replace(tmp, data)
        os.replace(meta_tmp, meta)
    except OSError as e:  # a read-only or full cache folder costs speed next time, never the run
        for t in (tmp, meta_tmp):
            try:
                t.unlink(missing_ok=True)  # a full disk keeps no half-written temp file
            except OSError:
                pass
        LOG.warning("could not write the decoded-image cache in %s (%s); set data.cache_dir", data.parent, e)
