"""The Trainer and what it needs: optimizers, schedules, checkpoints, devices."""

from . import dynamics  # noqa: F401 - registers the 'dynamics' callback
from .checkpoint import load_checkpoint, load_model_state, save_checkpoint
from .device import autocast, resolve_device
from .evaluate import evaluate_model
from .trainer import Trainer

__all__ = ["Trainer", "evaluate_model", "load_checkpoint", "load_model_state", "save_checkpoint",
           "autocast", "resolve_device"]
