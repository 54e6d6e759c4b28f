"""Where a command writes its output, without replacing anything of the user's.

An output named by the user (``--out``) that exists is refused unless ``force``; one in a
folder that does not exist, or a file output that names a folder, is refused with the path in
the message. A default output name that is taken gets the next free number instead
(``predictions-2.csv``), so running a command twice never overwrites its first result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .errors import ConfigError

LOG = logging.getLogger("trainlab")


def _numbered(path: Path, is_dir: bool) -> Path:
    n = 2
    while True:
        cand = path.with_name(f"{path.name}-{n}") if is_dir else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not cand.exists():
            return cand
        n += 1


def _taken(path: Path, is_dir: bool) -> bool:
    if is_dir:
        return path.exists() and (not path.is_dir() or any(path.iterdir()))
    return path.exists()


def choose_output(out: Optional[str | Path], default: str | Path, force: bool = False, is_dir: bool = False,
                  flag: str = "--out") -> Path:
    """The path to write: ``out`` (checked) or ``default`` (numbered when taken)."""
    if out is not None:
        path = Path(out)
        if not path.parent.exists() or (path.parent.exists() and not path.parent.is_dir()):
            raise ConfigError(f"{flag} {path}: the folder {path.parent} does not exist; create it or choose another path")
        if not is_dir and path.is_dir():
            raise ConfigError(f"{flag} {path} is a folder; give a file name (e.g. {path / Path(default).name})")
        if is_dir and path.exists() and not path.is_dir():
            raise ConfigError(f"{flag} {path} is a file; give a folder")
        if _taken(path, is_dir) and not force:
            what = "folder is not empty" if is_dir else "file exists"
            raise ConfigError(f"{flag} {path}: the {what}; nothing is replaced unless you pass --force "
                              f"(or choose another {flag})")
        return path
    path = Path(default)
    if _taken(path, is_dir) and not force:
        fresh = _numbered(path, is_dir)
        LOG.info("%s exists: writing %s instead (pass --force to replace it)", path, fresh)
        return fresh
    return path
