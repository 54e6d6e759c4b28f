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
                        f"(bytes {raw[e.start:e.start + 4]!r}: {e.reason}); {guess_encoding(raw)}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    _check_control_characters(path, text)
    return text


def guess_encoding(raw: bytes) -> str:
    """Advice for converting bytes that are not UTF-8, from what they look like."""
    head = raw[:4096]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) > 8 and head[1::2].count(0) > len(head) // 4):
        src = "UTF-16"  # a BOM, or every other byte zero: ASCII text in UTF-16
    elif head[:3] == b"\xef\xbb\xbf":
        src = "UTF-8 with a damaged byte later on; find it with: grep -naxv '.*' FILE"
        return f"it starts as UTF-8 ({src})"
    elif any(0x80 <= c <= 0x9f for c in head):
        src = "cp1252"  # Windows' Western encoding uses 0x80-0x9f for printable characters
    else:
        src = "latin1"
    return f"it looks like {src}: convert it with iconv -f {src} -t UTF-8 FILE > FILE.utf8"


# control characters other than tab and newline: a corpus holding them is usually a binary file or a
# wrong decoding, and they would become tokens silently
_CONTROL = {c for c in range(32) if c not in (9, 10)} | {127}


def _check_control_characters(path: Path, text: str) -> None:
    bad = [i for i, ch in enumerate(text[:1_000_000]) if ord(ch) in _CONTROL]
    if not bad:
        return
    if text.count("\x00", 0, 4096) > min(len(text), 4096) // 4:  # ASCII text stored as UTF-16 without a BOM
        raise DataError(f"{path}: every other byte is zero: it looks like UTF-16 without a byte-order mark; "
                        f"convert it with iconv -f UTF-16LE -t UTF-8 FILE > FILE.utf8 (or UTF-16BE)")
    line = text.count("\n", 0, bad[0]) + 1
    codes = sorted({f"U+{ord(text[i]):04X}" for i in bad[:1000]})
    raise DataError(f"{path}: {len(bad):,} control character(s) ({', '.join(codes[:5])}), the first on line {line}; "
                    f"a text corpus holds none (is it a binary file, or decoded wrongly?). Remove them, e.g. "
                    f"tr -d '\\000-\\010\\013-\\037' < FILE > FILE.clean")


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
