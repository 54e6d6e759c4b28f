"""Checkpoints: written atomically (temp file, flush, fsync, rename), read with weights_only.

A checkpoint is a plain dict of tensors and Python primitives: it never carries code, so
loading one cannot run anything, and a file that holds other objects is refused.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

from ..atomic import umask
from ..errors import CheckpointError

FORMAT = "trainlab-checkpoint-1"


def save_checkpoint(payload: dict, path: str | Path) -> Path:
    """Write ``payload`` to ``path`` so that ``path`` is always either the old or the new file."""
    path = Path(path)
    payload = {"format": FORMAT, **payload}
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; a checkpoint gets the usual file mode
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e} "
                              f"(the previous {path.name}, if any, is intact)") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files of writes that a killed process never finished (never a complete checkpoint)."""
    stale = sorted(Path(folder).glob(".*.pt.*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint safely; errors say which file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    _check_inflated_size(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: the file holds objects other than tensors and plain values, which could "
            f"run code when loaded (weights_only=True). Only load checkpoints you trust. Detail: "
            f"{str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a trainlab checkpoint (holds a {type(obj).__name__})")
    return obj


MAX_INFLATION = 4  # torch stores tensors uncompressed: a real checkpoint inflates to about its own size


def _check_inflated_size(path: Path) -> None:
    """A small compressed file that inflates to gigabytes is refused before anything is read. The
    limit (4x the file size, at least 64 MiB) is raised with TRAINLAB_MAX_CHECKPOINT_BYTES."""
    if not zipfile.is_zipfile(path):
        return  # the legacy (pre-1.6) format, or not a checkpoint: torch.load says which
    try:
        with zipfile.ZipFile(path) as zf:
            inflated = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({e})") from None
    raw = os.environ.get("TRAINLAB_MAX_CHECKPOINT_BYTES")
    limit = int(raw) if raw and raw.isdigit() else max(MAX_INFLATION * path.stat().st_size, 64 << 20)
    if inflated > limit:
        raise CheckpointError(f"{path}: refused: its {path.stat().st_size:,} bytes inflate to {inflated:,} "
                              f"(more than {limit:,}); a checkpoint written by torch.save is not compressed. "
                              f"If you trust it, raise TRAINLAB_MAX_CHECKPOINT_BYTES")


def load_model_state(model: torch.nn.Module, state: dict, source: str) -> None:
    """load_state_dict with an error that names missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:6])}" + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else ""))
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)
