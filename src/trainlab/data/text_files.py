"""Finding and reading corpus files: WikiText-2 / PTB folder layouts or one plain file.

Files are always decoded as UTF-8 (never the platform default), ``.gz`` transparently; a bad
byte is an error naming the file and its byte offset. A split without a file can be carved
off the end of the training text by ``data.valid_fraction`` / ``data.test_fraction``.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

from ..errors import DataError

SPLITS = ("train", "valid", "test")
# Layouts, in the order tried: WikiText-2 as pytorch/examples ships it, the raw WikiText release, PTB.
_NAMES = {s: [f"{s}.txt", f"wiki.{s}.tokens", f"ptb.{s}.txt"] for s in SPLITS}


def read_text(path: str | Path) -> str:
    """UTF-8 text of ``path`` (gzip if it ends in .gz); a leading BOM and CRLF are normalised."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        where = "of the decompressed text " if path.suffix == ".gz" else ""
        raise DataError(f"{path}: not valid UTF-8 at byte offset {e.start:,} {where}"
                        f"(bytes {raw[e.start:e.start + 4]!r}: {e.reason}); convert it with e.g. "
                        f"iconv -f latin1 -t utf-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n")


def _find(root: Path, split: str) -> Optional[Path]:
    for name in _NAMES[split]:
        for suffix in ("", ".gz"):
            p = root / (name + suffix)
            if p.is_file():
                return p
    return None


def locate(root: str | Path, files: dict) -> dict[str, Optional[Path]]:
    """split -> file (None: carve from train). ``files`` overrides the layout per split."""
    root = Path(root).expanduser()
    if root.is_file():
        return {"train": root, "valid": None, "test": None}
    if not root.is_dir():
        raise DataError(f"data.root={root}: no such file or folder")
    bad = [k for k in files if k not in SPLITS]
    if bad:
        raise DataError(f"data.files: unknown split(s) {bad}; use {', '.join(SPLITS)}")
    found: dict[str, Optional[Path]] = {}
    for split in SPLITS:
        if split in files:
            name = files[split]
            found[split] = None if name in (None, "") else _resolve(root, name, split)
        else:
            found[split] = _find(root, split)
    if found["train"] is None:
        present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_file())) or "nothing"
        raise DataError(
            f"data.root={root}: no training text (looked for {', '.join(_NAMES['train'])}, optionally .gz; "
            f"found: {present}). Name it with data.files.train=FILE; e.g. to train on WikiText-2's "
            f"valid.txt: data.files.train=valid.txt data.files.valid=null (valid is then carved off by "
            f"data.valid_fraction)")
    return found


def _resolve(root: Path, name: str, split: str) -> Path:
    p = Path(name).expanduser()
    p = p if p.is_absolute() else root / p
    if not p.is_file():
        raise DataError(f"data.files.{split}={name}: {p} does not exist")
    return p


def carve(text: str, fractions: dict[str, float]) -> dict[str, str]:
    """Split text by whole lines: the last fractions go to the named splits, the rest is 'train'.

    Contiguous, not shuffled: a language model's held-out text must be unseen running text.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n = len(lines)
    sizes = {k: int(round(n * f)) for k, f in fractions.items() if f > 0}
    end = n - sum(sizes.values())
    if end <= 0:
        raise DataError(f"cannot hold out {fractions} of {n} lines: nothing left to train on")
    out = {"train": lines[:end]}
    for k, size in sizes.items():
        out[k] = lines[end:end + size]
        end += size
    return {k: "".join(line + "\n" for line in v) for k, v in out.items()}
