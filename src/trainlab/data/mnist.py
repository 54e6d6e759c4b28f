"""MNIST from the original IDX files (.gz or raw), from .pth tensor pairs, or by download."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from ..registry import DATASETS
from .base import ImageSet, RawImages

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_STEMS = {
    ("train", "images"): ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    ("train", "labels"): ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    ("test", "images"): ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    ("test", "labels"): ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
}
_SUBDIRS = ["", "MNIST/raw", "raw", "mnist"]


def read_idx(path: str | Path) -> torch.Tensor:
    """Parse an IDX file (optionally gzip-compressed) into a tensor; errors name the file."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: header says {'x'.join(map(str, dims))} "
                        f"({expected:,} bytes) but the file holds {len(data):,} bytes")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")).copy())


def _find(root: Path, stems: list[str]) -> Path | None:
    for sub in _SUBDIRS:
        for stem in stems:
            for suffix in ("", ".gz"):
                p = root / sub / (stem + suffix)
                if p.is_file():
                    return p
    return None


def _load_pth(path: Path) -> torch.Tensor:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file becomes one clear error
        raise DataError(f"{path}: cannot load tensor file ({type(e).__name__}: {e})") from None
    if not isinstance(obj, torch.Tensor):
        raise DataError(f"{path}: expected a tensor, found {type(obj).__name__}")
    return obj


def _from_pth(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Course-style pairs (train_data.pth + train_labels.pth) or torchvision's processed/*.pt."""
    for sub in _SUBDIRS + ["MNIST/processed", "processed"]:
        d, lbl = root / sub / f"{split}_data.pth", root / sub / f"{split}_labels.pth"
        if d.is_file() and lbl.is_file():
            return _load_pth(d), _load_pth(lbl)
        legacy = root / sub / ("training.pt" if split == "train" else "test.pt")
        if legacy.is_file():
            try:
                x, y = torch.load(legacy, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise DataError(f"{legacy}: cannot load ({type(e).__name__}: {e})") from None
            return x, y
    return None


def _as_images(x: torch.Tensor, source: str) -> torch.Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise DataError(f"{source}: expected images [N, H, W] or [N, C, H, W], got {tuple(x.shape)}")
    if x.is_floating_point():  # course files sometimes hold floats in [0, 1] or [0, 255]
        scale = 255.0 if float(x.max()) <= 1.0 else 1.0
        x = (x * scale).round().clamp(0, 255)
    return x.to(torch.uint8)


def _download(root: Path) -> None:
    try:
        import torchvision

        for train in (True, False):
            torchvision.datasets.MNIST(str(root), train=train, download=True)
    except Exception as e:  # noqa: BLE001 - offline: say how to use local files instead
        raise DataError(
            f"could not download MNIST into {root} ({type(e).__name__}: {e}). Offline? Put the four "
            f"IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz) in a folder and set data.root=FOLDER") from None


def load_mnist_splits(root: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor, str]] | None:
    out = {}
    for split in ("train", "test"):
        img, lbl = _find(root, _STEMS[(split, "images")]), _find(root, _STEMS[(split, "labels")])
        if img and lbl:
            out[split] = (read_idx(img), read_idx(lbl), str(img))
            continue
        pair = _from_pth(root, split)
        if pair is not None:
            out[split] = (*pair, str(root))
    return out if "train" in out else None


@DATASETS.register("mnist")
def mnist(cfg: DataConfig) -> RawImages:
    """MNIST digits (60k train / 10k test, 28x28 grey) from data.root."""
    if not cfg.root:
        raise DataError("data.root is not set: point it at the folder with the MNIST IDX files "
                        "(e.g. data.root=../shared/data/mnist), or set data.download=true")
    root = Path(cfg.root).expanduser()
    found = load_mnist_splits(root)
    if found is None and cfg.download:
        _download(root)
        found = load_mnist_splits(root)
    if found is None:
        raise DataError(
            f"data.root={root}: no MNIST files found. Expected train-images-idx3-ubyte[.gz] and "
            f"train-labels-idx1-ubyte[.gz] (and t10k-*), or train_data.pth/train_labels.pth, in that "
            f"folder or its MNIST/raw; set data.download=true to fetch them when online")
    splits = {}
    for split, (x, y, src) in found.items():
        images = _as_images(x, src)
        if len(images) != len(y):
            raise DataError(f"{src}: {len(images)} images but {len(y)} labels")
        ids = [f"mnist:{split}:{i}" for i in range(len(images))]
        splits[split] = ImageSet(images, y.long().view(-1), ids)
    return RawImages(splits["train"], splits.get("test"), [str(i) for i in range(10)], str(root))
