"""Tasks turn a batch into a loss and outputs, and own their metrics."""

from . import classification, language_model  # noqa: F401  (registration)
from .classification import ClassificationTask
from .language_model import LanguageModelTask

__all__ = ["ClassificationTask", "LanguageModelTask"]
