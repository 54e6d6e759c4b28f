"""Decode a clip (a video file, or a folder of frame images) into uint8 frames with PyAV.

A clip is decoded once into at most ``data.cache_frames`` frames: a longer clip is subsampled
evenly over its whole length, a shorter one is kept whole. Training then samples ``data.frames``
of the cached frames per clip and batch (``clip_loader.frame_indices``), so random offsets need
no second decode. A clip with fewer than ``data.frames`` frames, or one that cannot be decoded,
raises DataError naming the file; the cache turns that into skip-with-warning or an error
(``data.on_bad_image``), exactly as for a corrupt image.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError
from .image_cache import CACHE_VERSION, DecodeSettings, decode_image, image_array
from .image_files import is_image

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ogv"}


def is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")


def frame_files(folder: Path) -> list[Path]:
    """Frame images of a frame-folder clip in natural order (frame_2 before frame_10)."""
    key = lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]  # noqa: E731
    return sorted((p for p in folder.iterdir() if is_image(p)), key=key)


def even_indices(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over range(n) (the centres of k equal segments); all of them if n <= k."""
    if n <= k:
        return np.arange(n)
    return ((np.arange(k) + 0.5) * n / k).astype(np.int64)


class ClipSettings(DecodeSettings):
    """Image decode settings plus the clip lengths: at most ``max_frames`` kept, ``min_frames`` needed."""

    ragged = True
    what = "clip"

    def __init__(self, size: Optional[tuple[int, int]], channels: int, resize: str, max_frames: int,
                 min_frames: int):
        super().__init__(size, channels, resize)
        self.max_frames, self.min_frames = max_frames, min_frames

    def key(self) -> dict:
        return {**super().key(), "clip": [self.max_frames, self.min_frames], "v": CACHE_VERSION}

    def decode(self, path: Path) -> np.ndarray:
        return decode_clip(path, self)


def decode_clip(path: Path, s: ClipSettings) -> np.ndarray:
    """A video file or frame folder -> uint8 [L, C, H, W], L <= s.max_frames. DataError when unusable."""
    frames = _folder_frames(path, s) if path.is_dir() else _video_frames(path, s)
    if len(frames) < s.min_frames:
        raise DataError(f"{path}: clip has {len(frames)} frame(s), fewer than data.frames={s.min_frames}")
    return np.stack(frames)


def _folder_frames(folder: Path, s: ClipSettings) -> list[np.ndarray]:
    files = frame_files(folder)
    image = DecodeSettings(s.size, s.channels, s.resize)
    return [decode_image(files[i], image) for i in even_indices(len(files), s.max_frames)]


def _video_frames(path: Path, s: ClipSettings) -> list[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: cannot decode video (the file has no video stream)")
            stream = container.streams.video[0]
            # the frame count in the header can be missing or wrong: decode all, convert only the kept
            raw = list(container.decode(stream))
            return [image_array(raw[i].to_image(), s) for i in even_indices(len(raw), s.max_frames)]
    except DataError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
