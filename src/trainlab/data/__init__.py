"""Datasets and loaders. Importing this package registers the built-in datasets."""

from . import embedded, image_datasets, mnist  # noqa: F401  (registration)
from .base import DataBundle, ImageSet, RawImages, build_data
from .loaders import BatchTransform, DatasetLoader, TensorLoader

__all__ = ["DataBundle", "ImageSet", "RawImages", "build_data", "BatchTransform", "DatasetLoader",
           "TensorLoader"]
