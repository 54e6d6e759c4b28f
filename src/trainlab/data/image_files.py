"""Finding labelled image files in the layouts people have. No decoding here.

- class folders: ``root/<split>/<class>/**/*.jpg`` (or ``root/<class>/...`` with no split level)
- file-name prefixes: ``root/cat.123.jpg`` -> class ``cat``
- Tiny-ImageNet's original layout: ``train/<wnid>/images/*.JPEG`` and ``val/images`` labelled
  by ``val/val_annotations.txt``; human-readable names from ``words.txt``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SPLIT_DIRS = {
    "train": ["train", "training", "training_set", "train_set"],
    "valid": ["val", "valid", "validation", "val_set", "valid_set"],
    "test": ["test", "testing", "test_set"],
}


@dataclass
class FileList:
    """Image files of one split and their class indices."""

    paths: list[Path]
    labels: list[int]
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


def is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def _images_under(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if is_image(p))


def find_split_dirs(root: Path, explicit: Optional[dict] = None) -> dict[str, Path]:
    """{split: folder}. ``explicit`` maps split -> folder name relative to root."""
    if explicit:
        out = {}
        for split, name in explicit.items():
            if split not in SPLIT_DIRS:
                raise DataError(f"data.split_dirs: unknown split '{split}' (use train, valid, test)")
            if not (root / name).is_dir():
                raise DataError(f"data.split_dirs.{split}: folder {root / name} does not exist")
            out[split] = root / name
        return out
    out = {}
    for split, names in SPLIT_DIRS.items():
        for n in names:
            if (root / n).is_dir():
                out[split] = root / n
                break
    return out


def scan_class_folders(split_dir: Path, class_names: Optional[list[str]] = None) -> tuple[FileList, list[str]]:
    """``split_dir/<class>/**/image`` -> files, labels and the sorted class names."""
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir}: expected one folder per class (e.g. {split_dir}/cats/*.jpg), found none")
    if class_names is not None and classes != class_names:
        missing = sorted(set(class_names) - set(classes))
        extra = sorted(set(classes) - set(class_names))
        raise DataError(f"{split_dir}: class folders differ from the training split's: "
                        f"missing {missing[:5]}, unexpected {extra[:5]}")
    paths, labels, empty = [], [], []
    for i, c in enumerate(classes):
        files = _images_under(split_dir / c)
        if not files:
            empty.append(str(split_dir / c))
        paths += files
        labels += [i] * len(files)
    if empty:
        raise DataError(f"empty class folder(s) with no images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                        + ", ".join(empty[:5]))
    return FileList(paths, labels), classes


def label_from_name(name: str) -> Optional[str]:
    """'cat.123.jpg' -> 'cat', 'dog_7.png' -> 'dog', 'Abyssinian_12.jpg' -> 'Abyssinian'."""
    stem = name.split(".")[0] if name.count(".") >= 2 else re.split(r"[_ -]?\d+$", Path(name).stem)[0]
    return stem or None


def scan_filename_prefix(folder: Path, class_names: Optional[list[str]] = None) -> tuple[FileList, list[str]]:
    """One flat folder whose file names start with the class: ``cat.1.jpg``, ``dog.2.jpg``."""
    files = sorted(p for p in folder.iterdir() if is_image(p))
    if not files:
        raise DataError(f"{folder}: no image files found")
    names = [label_from_name(p.name) for p in files]
    bad = [p.name for p, n in zip(files, names) if not n]
    if bad:
        raise DataError(f"{folder}: cannot read a class from the file names {bad[:5]} (expected e.g. cat.123.jpg)")
    classes = class_names or sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(f"{folder}: file-name classes {unknown[:5]} are not among {classes}")
    return FileList(files, [index[n] for n in names]), classes


# ---------------------------------------------------------------------------- Tiny-ImageNet
def tiny_imagenet_names(root: Path, wnids: list[str]) -> list[str]:
    words = root / "words.txt"
    if not words.is_file():
        return wnids
    table = {}
    for line in words.read_text(encoding="utf-8").splitlines():
        wnid, _, name = line.partition("\t")
        table[wnid] = name.split(",")[0].strip()
    return [table.get(w, w) for w in wnids]


def scan_tiny_imagenet(root: Path) -> tuple[FileList, FileList, list[str], list[str]]:
    """(train, val, wnids, readable names) from the original layout, checked line by line."""
    wnids_file, ann = root / "wnids.txt", root / "val" / "val_annotations.txt"
    for p in (wnids_file, root / "train", ann, root / "val" / "images"):
        if not p.exists():
            raise DataError(f"{root} is not in Tiny-ImageNet's original layout: {p} is missing "
                            f"(expected wnids.txt, train/<wnid>/images/, val/images/, val/val_annotations.txt)")
    wnids = [w.strip() for w in wnids_file.read_text(encoding="utf-8").split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = [], []
    for w in wnids:
        d = root / "train" / w / "images"
        files = sorted(p for p in d.glob("*") if is_image(p)) if d.is_dir() else []
        if not files:
            raise DataError(f"{d}: no training images for class {w} listed in {wnids_file}")
        train_paths += files
        train_labels += [index[w]] * len(files)
    val = _tiny_imagenet_val(root, ann, index)
    return FileList(train_paths, train_labels), val, wnids, tiny_imagenet_names(root, wnids)


def _tiny_imagenet_val(root: Path, ann: Path, index: dict) -> FileList:
    images_dir = root / "val" / "images"
    on_disk = {p.name for p in images_dir.iterdir() if is_image(p)}
    paths, labels, problems, seen = [], [], [], {}
    for n, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 2:
            problems.append(f"line {n}: expected 'file<TAB>wnid...', got {line[:60]!r}")
            continue
        name, wnid = fields[0], fields[1]
        if name in seen:
            first, first_wnid = seen[name]
            two = f" with another class ({first_wnid} there, {wnid} here)" if first_wnid != wnid else ""
            problems.append(f"line {n}: {name} is annotated again{two}, first on line {first}")
        elif wnid not in index:
            problems.append(f"line {n}: class {wnid} is not in wnids.txt")
        elif name not in on_disk:
            problems.append(f"line {n}: {name} is not in {images_dir}")
        else:
            paths.append(images_dir / name)
            labels.append(index[wnid])
        seen.setdefault(name, (n, wnid))
    unlabelled = sorted(on_disk - set(seen))
    if unlabelled:
        problems.append(f"{len(unlabelled)} image(s) in {images_dir} have no annotation, e.g. {unlabelled[:3]}")
    if problems:
        raise DataError(f"{ann} does not match {images_dir} ({len(problems)} problem(s)): " + "; ".join(problems[:5]))
    return FileList(paths, labels)
