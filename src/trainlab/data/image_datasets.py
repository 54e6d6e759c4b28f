"""Image datasets read from files: class folders, file-name labels, Tiny-ImageNet, CIFAR-10.

Each factory finds the files of each split, decodes them once into the uint8 cache
(``image_cache``) and returns ``RawImages`` with the dataset's own splits; ``build_data``
then adds the seeded valid/test splits that the dataset does not have.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from ..registry import DATASETS
from .base import ImageSet, RawImages
from .image_cache import DecodeSettings, FileImageSet, cache_dir_default, decoded_bytes, load_or_decode
from .image_files import FileList, find_split_dirs, is_image, scan_class_folders, scan_filename_prefix, \
    scan_tiny_imagenet

LOG = logging.getLogger("trainlab")


def _root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DataError(f"data.root is not set: point it at the folder that holds the {cfg.name} images")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={root}: no such folder")
    return root


def decode_settings(cfg: DataConfig) -> DecodeSettings:
    size = cfg.size
    if isinstance(size, int):
        size = (size, size)
    elif size is not None:
        size = (int(size[0]), int(size[1]))
    return DecodeSettings(size, cfg.channels or 3, cfg.resize, cfg.max_image_pixels)


def load_split(files: FileList, cfg: DataConfig, split: str):
    """Decoded into the cache (ImageSet), or, past data.cache_max_gb, read per batch (FileImageSet)."""
    settings = decode_settings(cfg)
    if decoded_bytes(len(files), settings, files.paths[0]) > cfg.cache_max_gb * 2**30:
        LOG.info("%s split: %d images exceed data.cache_max_gb=%s: decoding per batch with DataLoader workers",
                 split, len(files), cfg.cache_max_gb)
        return FileImageSet(files.paths, files.labels, settings, cfg.on_bad_image)
    cache = None if not cfg.cache else Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache_dir_default()
    images, labels, paths, _ = load_or_decode(files, settings, cache, f"{cfg.name}-{split}", cfg.on_bad_image)
    return ImageSet(images, torch.tensor(labels, dtype=torch.long), [str(p) for p in paths])


def _scan(folder: Path, layout: str, class_names=None) -> tuple[FileList, list[str]]:
    has_dirs = any(d.is_dir() and not d.name.startswith(".") for d in folder.iterdir())
    if layout == "class_folders" or (layout == "auto" and has_dirs):
        return scan_class_folders(folder, class_names)
    if layout == "filename_prefix" or any(is_image(p) for p in folder.iterdir()):
        return scan_filename_prefix(folder, class_names)
    raise DataError(f"{folder}: neither class folders nor labelled image files (e.g. cat.1.jpg) found")


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataConfig) -> RawImages:
    """Any class-folder tree (root/<split>/<class>/*.jpg, or root/<class>/*.jpg) or file-name labels."""
    root = _root(cfg)
    dirs = find_split_dirs(root, cfg.split_dirs)
    if "train" not in dirs:
        if cfg.split_dirs:
            raise DataError(f"data.split_dirs must name a train folder, got {cfg.split_dirs}")
        dirs = {"train": root}  # root/<class>/... : one split; valid/test come from fractions
    train_files, classes = _scan(dirs["train"], cfg.layout)
    splits = {"train": load_split(train_files, cfg, "train")}
    for split in ("valid", "test"):
        if split in dirs:
            files, _ = _scan(dirs[split], cfg.layout, classes)
            splits[split] = load_split(files, cfg, split)
    return RawImages(splits["train"], splits.get("test"), classes, str(root), valid=splits.get("valid"))


@DATASETS.register("catsdogs")
def catsdogs(cfg: DataConfig) -> RawImages:
    """Cats vs dogs: class folders (training_set/cats, ...) or one flat folder of cat.1.jpg, dog.1.jpg."""
    return imagefolder(cfg)


@DATASETS.register("tiny_imagenet")
def tiny_imagenet(cfg: DataConfig) -> RawImages:
    """Tiny-ImageNet in its original layout; the labelled val set is the test split, names from words.txt."""
    root = _root(cfg)
    train, val, wnids, names = scan_tiny_imagenet(root)
    readable = [f"{n} ({w})" if n != w else w for n, w in zip(names, wnids)]
    return RawImages(load_split(train, cfg, "train"), load_split(val, cfg, "val"), readable, str(root),
                     split_names={"test": "Tiny-ImageNet's labelled validation set (val/)"})


# ---------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles: allow numpy arrays and plain values, nothing that runs code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a CIFAR batch file")


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            d = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({e})") from None
    data, labels = d.get(b"data", d.get("data")), d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels' entries")
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DataError(f"{path}: size {raw.size:,} is not a whole number of 3,073-byte CIFAR-10 records")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _cifar_batches(root: Path):
    for folder, train, test, reader in (
            ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], _read_python_batch),
            ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"],
             _read_binary_batch)):
        d = root / folder if (root / folder).is_dir() else root
        if all((d / f).is_file() for f in train + test):
            return [d / f for f in train], [d / f for f in test], reader
    return None


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> RawImages:
    """CIFAR-10 from the original python (or binary) batches, or JPEG class folders (train/, test/)."""
    root = _root(cfg)
    found = _cifar_batches(root)
    if found is None:
        return imagefolder(cfg)
    train_files, test_files, reader = found
    splits = {}
    for name, files in (("train", train_files), ("test", test_files)):
        parts = [reader(f) for f in files]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        splits[name] = ImageSet(x, y, [f"cifar10:{name}:{i}" for i in range(len(y))])
    return RawImages(splits["train"], splits["test"], CIFAR10_CLASSES, str(root))
