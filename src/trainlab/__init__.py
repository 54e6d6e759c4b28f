"""trainlab: the classic deep-learning labs from one command and a YAML recipe.

Python API (the CLI is a thin layer over it)::

    import trainlab
    run = trainlab.train("recipes/mnist.yaml", "train.epochs=2", data={"root": "../shared/data/mnist"})
    model = trainlab.load(run.best_checkpoint)      # eval-mode nn.Module with .class_names
    result = trainlab.evaluate(run.best_checkpoint)  # loss, acc1, acc5, per-class metrics

    class MyCallback(trainlab.Callback): ...          # the Trainer's events (docs/architecture.md)
    trainlab.train("recipes/mnist.yaml", callbacks=[MyCallback()])
"""

__version__ = "0.1.0"

from .config import Config, ConfigError  # noqa: E402
from .errors import CheckpointError, DataError, DeviceError, TrainlabError  # noqa: E402


def __getattr__(name):  # torch-heavy entry points load on first use
    if name in ("train", "evaluate", "load", "Run"):
        from . import api

        return getattr(api, name)
    if name == "Callback":
        from .engine.callbacks import Callback

        return Callback
    if name == "Task":
        from .tasks.base import Task

        return Task
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")


__all__ = ["train", "evaluate", "load", "Run", "Callback", "Task", "Config", "ConfigError", "CheckpointError", "DataError",
           "DeviceError", "TrainlabError"]
