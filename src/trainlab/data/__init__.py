"""Datasets and loaders. Importing this package registers the built-in datasets."""

from . import embedded, image_datasets, mnist, text, video  # noqa: F401  (registration)
from .base import DataBundle, ImageSet, RawImages, build_data
from .loaders import BatchTransform, DatasetLoader, TensorLoader
from .text import TextBundle, TextCorpus
from .text_loader import BPTTLoader
from .vocab import Vocab, tokenize

__all__ = ["DataBundle", "ImageSet", "RawImages", "build_data", "BatchTransform", "DatasetLoader",
           "TensorLoader", "TextBundle", "TextCorpus", "BPTTLoader", "Vocab", "tokenize"]
