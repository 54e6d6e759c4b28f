"""Finding labelled clips in the layouts action datasets ship in. No decoding here.

- UCF101: ``root/<class>/<clip>.avi`` (or .mp4, ...), with optional split lists
  ``trainlistNN.txt`` (lines ``Class/clip.avi [label]``) and ``testlistNN.txt`` in data.root,
  ``data.split_lists`` or a ``ucfTrainTestlist`` folder beside or inside the root.
- frame folders: ``root/<class>/<clip>/<frame>.jpg`` (one folder of frame images per clip).

Both layouts may be mixed. Labels come from the sorted class-folder names.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..errors import DataError
from .image_files import FileList
from .video_decode import frame_files, is_video

LOG = logging.getLogger("trainlab")
SPLIT_LIST_DIR = "ucfTrainTestlist"


def _clips_in(class_dir: Path) -> list[Path]:
    out = []
    for p in sorted(class_dir.iterdir()):
        if is_video(p) or (p.is_dir() and not p.name.startswith(".") and frame_files(p)):
            out.append(p)
    return out


def scan_clips(root: Path) -> tuple[dict[str, tuple[Path, int]], list[str]]:
    """{'Class/clip.avi': (path, label)} for every clip under root, and the sorted class names."""
    classes = sorted(d.name for d in root.iterdir()
                     if d.is_dir() and not d.name.startswith(".") and d.name != SPLIT_LIST_DIR)
    if not classes:
        raise DataError(f"{root}: expected one folder per class holding clips (root/<class>/<clip>.avi "
                        f"or root/<class>/<clip>/<frame>.jpg), found no folders")
    clips, empty = {}, []
    for label, c in enumerate(classes):
        found = _clips_in(root / c)
        if not found:
            empty.append(str(root / c))
        for p in found:
            clips[f"{c}/{p.name}"] = (p, label)
    if empty:
        raise DataError(f"class folder(s) with no video files or frame folders: {', '.join(empty[:5])} "
                        f"(expected <class>/<clip>.avi or <class>/<clip>/<frame>.jpg)")
    return clips, classes


def find_split_lists(root: Path, split_id: int, folder: Optional[str] = None) -> Optional[tuple[Path, Path]]:
    """(trainlistNN.txt, testlistNN.txt), or None when the dataset has no split lists."""
    names = f"trainlist{split_id:02d}.txt", f"testlist{split_id:02d}.txt"
    if folder:
        d = Path(folder).expanduser()
        if not all((d / n).is_file() for n in names):
            raise DataError(f"data.split_lists={d}: {names[0]} and {names[1]} not found there")
        return d / names[0], d / names[1]
    for d in (root, root / SPLIT_LIST_DIR, root.parent / SPLIT_LIST_DIR):
        if all((d / n).is_file() for n in names):
            return d / names[0], d / names[1]
    if any(root.glob("trainlist*.txt")) or (root / SPLIT_LIST_DIR).is_dir():
        raise DataError(f"{root}: split lists exist but not {names[0]}/{names[1]} (data.split_id={split_id})")
    return None


def read_split_list(path: Path, clips: dict[str, tuple[Path, int]]) -> FileList:
    """The clips a split list names, in its order. A clip that is not on disk is an error naming the line.
    Names are matched without regard to case: UCF101's lists spell some clips differently from the files."""
    lower = {k.lower(): v for k, v in clips.items()}
    paths, labels, missing, twice, lines = [], [], [], [], {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        name = line.strip().split(" ")[0].replace("\\", "/") if line.strip() else ""
        if not name:
            continue
        hit = clips.get(name) or lower.get(name.lower())
        if hit is None:
            missing.append(f"line {n}: {name}")
            continue
        if hit[0] in lines:
            twice.append(f"line {n}: {name} (first on line {lines[hit[0]]})")
            continue
        lines[hit[0]] = n
        paths.append(hit[0])
        labels.append(hit[1])
    if missing:
        raise DataError(f"{path} names {len(missing)} clip(s) not found under the dataset root: "
                        + "; ".join(missing[:5]))
    if twice:
        raise DataError(f"{path} names {len(twice)} clip(s) twice; each clip is one sample: " + "; ".join(twice[:5]))
    if not paths:
        raise DataError(f"{path}: lists no clips")
    return FileList(paths, labels)


def clip_splits(root: Path, split_id: int, folder: Optional[str] = None) -> tuple[dict[str, FileList], list[str]]:
    """{'train': FileList[, 'test': FileList]} and the class names."""
    clips, classes = scan_clips(root)
    lists = find_split_lists(root, split_id, folder)
    if lists is None:
        items = list(clips.values())
        return {"train": FileList([p for p, _ in items], [y for _, y in items])}, classes
    splits = {"train": read_split_list(lists[0], clips), "test": read_split_list(lists[1], clips)}
    both = sorted(set(splits["train"].paths) & set(splits["test"].paths))
    if both:  # a test clip trained on: every test figure would be optimistic
        raise DataError(f"{len(both)} clip(s) are in both {lists[0].name} and {lists[1].name}, e.g. "
                        f"{', '.join(str(p.relative_to(root)) for p in both[:3])}; a clip belongs to one split")
    unused = len(clips) - len(splits["train"]) - len(splits["test"])
    if unused > 0:
        LOG.info("%d clip(s) under %s are in neither %s nor %s", unused, root, lists[0].name, lists[1].name)
    return splits, classes
