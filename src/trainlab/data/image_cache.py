"""Decode each image once: a uint8 tensor cache on disk, memory-mapped, rebuilt when anything changes.

The cache key hashes the file list, each file's size and mtime, and the decode settings
(size, channels, resize mode), so editing, adding or removing one image, or asking for
another size, builds a new cache. Files are decoded in parallel worker processes. Images
that cannot be decoded are skipped with one warning naming each file (or are an error with
``data.on_bad_image=error``); the skip list is kept with the cache so a cached run warns too.

The mechanism is generic over what a file decodes to: ``settings.decode(path)`` gives one array
per file. Video clips (``data/video_decode.py``) decode to a variable number of frames
(``settings.ragged``); the cache pads them to the longest and keeps each clip's length.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch

from ..errors import DataError
from ._cache_files import open_memmap, verified, write_cache
from .image_files import FileList

LOG = logging.getLogger("trainlab")
CACHE_VERSION = 3  # 2: EXIF orientation applied, 16-bit images scaled, alpha composited; 3: JPEG draft decoding
MAX_PIXELS = 89_478_485  # Pillow's own default limit (about 0.25 GB as RGB)


class DecodeSettings:
    """How files become arrays: target (H, W) or None for native size, channels, resize mode."""

    ragged = False  # True: arrays differ in their first dimension (clip lengths); padded in the cache
    what = "image"  # for messages

    def __init__(self, size: Optional[tuple[int, int]], channels: int, resize: str, max_pixels: int = MAX_PIXELS):
        self.size, self.channels, self.resize, self.max_pixels = size, channels, resize, max_pixels

    def key(self) -> dict:
        return {"size": self.size, "channels": self.channels, "resize": self.resize, "max_pixels": self.max_pixels,
                "v": CACHE_VERSION}

    def decode(self, path: Path) -> np.ndarray:
        return decode_image(path, self)


def decode_image(path: Path, s: DecodeSettings) -> np.ndarray:
    """One file -> uint8 [C, H, W]. Raises DataError naming the file when it cannot be decoded, or
    when it has more pixels than ``data.max_image_pixels`` (checked from the header, before decoding)."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # our own limit below, with the file and the key in its message
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > s.max_pixels:
                    raise DataError(f"{path}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is more than "
                                    f"data.max_image_pixels={s.max_pixels:,}; raise it if the image is real")
                if s.size is not None and im.format == "JPEG":
                    im.draft(None, _draft_size((w, h), s, im.getexif().get(0x0112, 1)))
                return image_array(ImageOps.exif_transpose(im), s)  # the orientation a viewer shows
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def _draft_size(raw: tuple[int, int], s: DecodeSettings, orientation: int) -> tuple[int, int]:
    """The smallest (w, h) of the stored JPEG that still resizes to ``s.size`` without upsampling:
    Pillow's ``draft`` then decodes at 1/2, 1/4 or 1/8 scale in the DCT (a low-pass; 2.1x faster
    for a 500x375 photo decoded to 64 px, benchmarks/decode_speed.py) when that stays this large. EXIF
    orientations 5-8 store the image transposed: the target is transposed to match."""
    th, tw = s.size
    w, h = raw[::-1] if orientation in (5, 6, 7, 8) else raw  # as a viewer shows it
    if s.resize == "crop":  # the shorter side scaled to fit: both sides at least the scaled size
        scale = max(tw / w, th / h)
        tw, th = math.ceil(w * scale), math.ceil(h * scale)
    return (th, tw) if orientation in (5, 6, 7, 8) else (tw, th)


def _to_8bit(im):
    """Modes Pillow's convert() would clip or misread -> an 8-bit image with the same look: 16- and
    32-bit integer greys scaled to 0-255, floats in [0, 1] scaled, alpha composited onto black."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.int64)
        top = 65535 if arr.max(initial=0) <= 65535 else int(arr.max())
        if arr.min(initial=0) < 0:
            raise DataError(f"{getattr(im, 'filename', 'image')}: 32-bit image with negative values; convert it to "
                            f"8-bit first")
        return Image.fromarray(np.round(arr * (255 / top)).astype(np.uint8), "L")
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise DataError(f"{getattr(im, 'filename', 'image')}: floating-point image outside [0, 1] "
                            f"({arr.min():g}..{arr.max():g}); convert it to 8-bit first")
        return Image.fromarray(np.round(arr * 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float64)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)  # transparent means nothing there: black
        return Image.fromarray(np.round(rgb).astype(np.uint8), "RGB")
    return im


def image_array(im, s: DecodeSettings) -> np.ndarray:
    """A PIL image (a file's, or a video frame's) -> uint8 [C, H, W] with the settings' channels and size."""
    im = _to_8bit(im).convert("L" if s.channels == 1 else "RGB")
    if s.size is not None and im.size != (s.size[1], s.size[0]):
        im = _resize(im, s.size, s.resize)
    arr = np.asarray(im, dtype=np.uint8)
    return np.array(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))  # a writable, contiguous copy


def _resize(im, size: tuple[int, int], mode: str):
    from PIL import Image

    h, w = size
    if mode == "stretch":
        return im.resize((w, h), Image.BILINEAR, reducing_gap=3.0)
    # "crop": the centred box of the target's aspect ratio, scaled to the target in one resampling.
    # The box is in source pixels, not rounded, so the same picture comes out whatever size the
    # file was decoded at (a JPEG's draft scale included).
    scale = max(w / im.width, h / im.height)
    bw, bh = min(im.width, w / scale), min(im.height, h / scale)  # min: rounding never leaves the image
    left, top = max(0.0, (im.width - bw) / 2), max(0.0, (im.height - bh) / 2)
    return im.resize((w, h), Image.BILINEAR, box=(left, top, left + bw, top + bh), reducing_gap=3.0)


def _decode_safe(args):
    path, settings = args
    try:
        return settings.decode(path), None
    except DataError as e:
        return None, str(e)


def cache_key(files: FileList, s: DecodeSettings) -> str:
    h = hashlib.sha1(json.dumps(s.key(), sort_keys=True).encode())
    for p, y in zip(files.paths, files.labels):
        h.update(f"{p}\0{_signature(p)}\0{y}\n".encode())
    return h.hexdigest()[:20]


def _signature(p: Path) -> str:
    """Size and mtime of a file; of every file in a folder (a frame-folder clip: editing one frame
    does not change the folder's own mtime)."""
    if not os.path.isdir(p):
        st = os.stat(p)
        return f"{st.st_size}\0{st.st_mtime_ns}"
    entries = sorted(os.scandir(p), key=lambda e: e.name)
    return "\0".join(f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}" for e in entries)


def cache_dir_default() -> Path:
    base = os.environ.get("TRAINLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "trainlab")
    return Path(base)


class Decoded(NamedTuple):
    images: torch.Tensor  # uint8 [N, ...] (memory-mapped when cached); ragged: padded to the longest
    labels: list
    paths: list
    skipped: list
    lengths: Optional[list]  # ragged only: each item's true first dimension


def load_or_decode(files: FileList, s: DecodeSettings, cache_dir: Optional[Path], tag: str,
                   on_bad: str = "skip", workers: Optional[int] = None):
    """-> (images uint8 [N, C, H, W] (memory-mapped when cached), labels, kept paths, skipped)."""
    return load_or_decode_items(files, s, cache_dir, tag, on_bad, workers)[:4]


def load_or_decode_items(files: FileList, s: DecodeSettings, cache_dir: Optional[Path], tag: str,
                         on_bad: str = "skip", workers: Optional[int] = None) -> Decoded:
    key = cache_key(files, s)
    if cache_dir is not None:
        data, meta = cache_dir / f"{tag}-{key}.u8", cache_dir / f"{tag}-{key}.json"
        info = verified(data, meta)
        if info is not None:
            _report_bad(info["skipped"], on_bad, tag, s.what)
            keep = info["kept"]
            return Decoded(open_memmap(data, info["shape"]), [files.labels[i] for i in keep],
                           [files.paths[i] for i in keep], info["skipped"], info.get("lengths"))
    arrays, keep, skipped = _decode_all(files, s, workers)
    _report_bad(skipped, on_bad, tag, s.what)
    if not arrays:
        raise DataError(f"no {s.what} of the {tag} split could be decoded")
    lengths = [len(a) for a in arrays] if s.ragged else None
    if s.ragged:
        arrays = _pad(arrays)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        examples = {a.shape: files.paths[i].name for a, i in zip(arrays, keep)}
        raise DataError(f"{tag}: images have different sizes ({', '.join(f'{n} {s[-2]}x{s[-1]}' for s, n in list(examples.items())[:3])}); "
                        f"set data.size (e.g. data.size=64) to resize them")
    images = torch.from_numpy(np.stack(arrays))
    if cache_dir is not None:
        write_cache(images, keep, skipped, lengths, data, meta)
    return Decoded(images, [files.labels[i] for i in keep], [files.paths[i] for i in keep], skipped, lengths)


def _pad(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Zero-pad the first dimension to the longest; the lengths say what is real."""
    n = max(len(a) for a in arrays)
    return [a if len(a) == n else np.concatenate([a, np.zeros((n - len(a), *a.shape[1:]), a.dtype)])
            for a in arrays]


def _decode_all(files: FileList, s: DecodeSettings, workers: Optional[int]):
    jobs = [(p, s) for p in files.paths]
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) > 256:
        with mp.get_context("fork" if os.name == "posix" else "spawn").Pool(workers) as pool:
            results = pool.map(_decode_safe, jobs, chunksize=64)
    else:
        results = [_decode_safe(j) for j in jobs]
    arrays, keep, skipped = [], [], []
    for i, (arr, err) in enumerate(results):
        if arr is None:
            skipped.append(err)
        else:
            arrays.append(arr)
            keep.append(i)
    return arrays, keep, skipped


def _report_bad(skipped: list[str], on_bad: str, tag: str, what: str = "image") -> None:
    if not skipped:
        return
    if on_bad == "error":
        raise DataError(f"{skipped[0]} (data.on_bad_image=error; {len(skipped)} bad file(s) in the {tag} split)")
    LOG.warning("skipped %d unreadable %s(s) in the %s split:\n  %s", len(skipped), what, tag, "\n  ".join(skipped))


class FileImageSet(torch.utils.data.Dataset):
    """A split too large to cache: decoded per sample by DataLoader workers, with the same
    decode as the cache (so both paths give the same pixels)."""

    def __init__(self, paths: list[Path], labels, settings: DecodeSettings, on_bad: str = "skip"):
        if settings.size is None:
            raise DataError("datasets read through the DataLoader path need data.size (images must share a size)")
        self.paths, self.settings, self.on_bad = list(paths), settings, on_bad
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.ids = [str(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.settings.channels, *self.settings.size)

    def __getitem__(self, i: int):
        try:
            arr = decode_image(self.paths[i], self.settings)
        except DataError as e:
            if self.on_bad == "error":
                raise
            LOG.warning("unreadable image replaced by zeros: %s", e)  # batch shapes must not change
            arr = np.zeros(self.shape, dtype=np.uint8)
        return torch.from_numpy(arr), self.labels[i]

    def subset(self, index: torch.Tensor) -> "FileImageSet":
        idx = index.tolist()
        return FileImageSet([self.paths[i] for i in idx], self.labels[index], self.settings, self.on_bad)

    def sample_images(self, n: int = 2000, seed: int = 0) -> torch.Tensor:
        """A seeded sample, decoded, for normalisation statistics."""
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(self), generator=g)[:n].tolist()
        return torch.stack([self[i][0] for i in pick])


def decoded_bytes(n: int, s: DecodeSettings, first: Path) -> int:
    if s.size is not None:
        h, w = s.size
    else:
        from PIL import Image

        with Image.open(first) as im:
            w, h = im.size
    return n * s.channels * h * w
