"""Tasks turn a batch into a loss and outputs, and own their metrics."""

from . import classification  # noqa: F401  (registration)
from .classification import ClassificationTask

__all__ = ["ClassificationTask"]
