"""``trainlab prepare``: build class-folder copies of datasets without touching the originals,
and extract archives safely (no path traversal, no links, no devices)."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from ..errors import DataError
from .image_files import is_image, label_from_name, scan_tiny_imagenet

LOG = logging.getLogger("trainlab")


def _place(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    if mode == "link":
        try:
            os.link(src, dst)  # a hard link: no copy, and deleting either name keeps the data
            return
        except OSError:
            pass  # another filesystem: fall back to a symlink
        dst.symlink_to(src.resolve())
    elif mode == "symlink":
        dst.symlink_to(src.resolve())
    else:
        shutil.copy2(src, dst)


def _check_dst(src: Path, dst: Path) -> None:
    src, dst = src.resolve(), dst.resolve()
    if dst == src or src in dst.parents:
        raise DataError(f"destination {dst} must be outside the source {src} (the originals are never modified)")


def prepare_tiny_imagenet(root: str | Path, dst: str | Path, mode: str = "link") -> dict:
    """Class folders dst/train/<wnid>/*.JPEG and dst/val/<wnid>/*.JPEG from the original layout."""
    root, dst = Path(root), Path(dst)
    _check_dst(root, dst)
    train, val, wnids, _ = scan_tiny_imagenet(root)  # validates the annotations first
    counts = {}
    for split, files in (("train", train), ("val", val)):
        for p, y in zip(files.paths, files.labels):
            _place(p, dst / split / wnids[y] / p.name, mode)
        counts[split] = len(files)
    for name in ("wnids.txt", "words.txt"):
        if (root / name).is_file():
            _place(root / name, dst / name, "copy")
    return counts


def prepare_catsdogs(src: str | Path, dst: str | Path, mode: str = "copy") -> dict:
    """Flat folder(s) of cat.1.jpg / dog.1.jpg -> dst/<split>/<class>/; class folders are mirrored.

    ``src`` may be one flat folder (all goes to dst/train) or hold split folders (train, test1, ...).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"{src}: no such folder")
    _check_dst(src, dst)
    flat = [p for p in src.iterdir() if is_image(p)]
    jobs = [(src, "train")] if flat else [(d, d.name) for d in sorted(src.iterdir()) if d.is_dir()]
    counts: dict[str, int] = {}
    for folder, split in jobs:
        for p in sorted(folder.rglob("*")):
            if not is_image(p):
                continue
            label = p.parent.name if p.parent != folder else label_from_name(p.name)
            if not label:
                raise DataError(f"{p}: cannot tell its class from the file name (expected e.g. cat.123.jpg)")
            _place(p, dst / split / label / p.name, mode)
            counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
    if not counts:
        raise DataError(f"{src}: no images found")
    return counts


# ---------------------------------------------------------------------------- archives
def _safe_target(dst: Path, name: str) -> Path:
    target = (dst / name).resolve()
    if dst.resolve() not in target.parents and target != dst.resolve():
        raise DataError(f"archive member {name!r} would be written outside {dst}: refused")
    return target


def _members(archive: Path):
    """(name, kind, open) for each member of a zip or tar; kind is 'file', 'dir' or 'other'."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                kind = "other" if is_link else "dir" if info.is_dir() else "file"
                yield info.filename, kind, lambda info=info: zf.open(info)
        return
    try:
        tf = tarfile.open(archive)
    except (tarfile.TarError, OSError) as e:
        detail = str(e).splitlines()[0].rstrip(":")  # tarfile lists every method it tried, one a line
        raise DataError(f"{archive}: not a zip or tar archive ({detail})") from None
    with tf:
        for m in tf.getmembers():
            kind = "file" if m.isfile() else "dir" if m.isdir() else "other"
            yield m.name, kind, lambda m=m: tf.extractfile(m)


MAX_RATIO, MIN_LIMIT = 100, 1 << 30  # inflate to at most 100x the archive, and never less than 1 GiB allowed


def extract_limit(archive: Path, max_bytes: int | None = None) -> int:
    """How much an extraction may write: ``max_bytes``, else TRAINLAB_MAX_EXTRACT_BYTES, else
    100x the archive's size (at least 1 GiB). Real dataset archives inflate a few times at most."""
    if max_bytes is None:
        raw = os.environ.get("TRAINLAB_MAX_EXTRACT_BYTES")
        max_bytes = int(raw) if raw and raw.isdigit() else max(MAX_RATIO * archive.stat().st_size, MIN_LIMIT)
    return max_bytes


def extract_archive(archive: str | Path, dst: str | Path, max_bytes: int | None = None) -> list[Path]:
    """Extract .zip / .tar(.gz/.bz2/.xz) into dst; refuse absolute paths, '..', links and devices,
    members that would replace an existing file, and more than ``extract_limit`` bytes in all (an
    archive bomb). A refused or failed extraction removes what it wrote."""
    archive, dst = Path(archive), Path(dst)
    if not archive.is_file():
        raise DataError(f"archive not found: {archive}")
    if dst.exists() and not dst.is_dir():
        raise DataError(f"cannot extract {archive} into {dst}: it is a file; give a folder")
    limit = extract_limit(archive, max_bytes)
    out: list[Path] = []
    try:
        dst.mkdir(parents=True, exist_ok=True)  # inside: a dst that is a file is the OSError below
        written = 0
        for name, kind, opener in _members(archive):
            target = _safe_target(dst, name)
            if kind == "other":
                raise DataError(f"{archive}: member {name!r} is a link or special file: refused")
            if kind == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.exists():
                raise DataError(f"{archive}: member {name!r} would replace {target}, which exists; nothing is "
                                f"overwritten: extract into an empty folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            out.append(target)
            written = _copy_limited(opener, target, written, limit, archive)
    except OSError as e:
        _remove(out)
        raise DataError(f"cannot extract {archive} into {dst}: {e.strerror or e}; nothing of it was kept") from None
    except BaseException:
        _remove(out)
        raise
    return out


def _copy_limited(opener, target: Path, written: int, limit: int, archive: Path) -> int:
    with opener() as fsrc, open(target, "wb") as fdst:
        while chunk := fsrc.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise DataError(f"{archive}: inflates to more than {limit:,} bytes (an archive bomb?); refused. "
                                f"If it is real, raise the limit: trainlab prepare extract --max-bytes N, or "
                                f"TRAINLAB_MAX_EXTRACT_BYTES")
            fdst.write(chunk)
    return written


def _remove(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass
