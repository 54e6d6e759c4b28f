"""Build things by name: models, datasets, tasks, optimizers, schedules.

Each registry maps a name to a factory. Modules register themselves on import; the
registries import the built-in modules lazily so that ``import trainlab`` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Callable

from .errors import ConfigError

_BUILTINS = {
    "models": ["trainlab.models"],
    "datasets": ["trainlab.data"],
    "tasks": ["trainlab.tasks"],
    "optimizers": ["trainlab.engine.optim"],
    "schedules": ["trainlab.engine.schedules"],
    "callbacks": ["trainlab.engine.monitoring", "trainlab.engine.progress", "trainlab.engine.lookahead"],
}


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable] = {}
        self._loaded = False
        # name -> factory or None, for families too large to list (any torchvision model)
        self.fallback: Callable[[str], Callable | None] | None = None
        # "prefix:" -> resolver(rest) -> factory, raising ConfigError for an unknown rest (timm:NAME)
        self.prefixes: dict[str, Callable[[str], Callable]] = {}

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in _BUILTINS[self.kind]:
                importlib.import_module(mod)

    def register(self, name: str | None = None):
        def deco(fn):
            key = name or fn.__name__
            if key in self._items and self._items[key] is not fn:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            if self.kind == "tasks":  # the task contract is checked once, where the task is declared
                from .tasks.base import check_task_class

                check_task_class(fn)
            self._items[key] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def check(self, name: str, key: str) -> None:
        prefix = name.split(":", 1)[0] + ":"
        if name not in self.names() and prefix in self.prefixes:
            try:
                self._items[name] = self.prefixes[prefix](name[len(prefix):])
            except ConfigError as e:
                raise ConfigError(f"{key}={name!r}: {e}") from None
        if name not in self.names() and self.fallback is not None:
            factory = self.fallback(name)
            if factory is not None:
                self._items[name] = factory
        if name not in self.names():
            match = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.4)
            hint = f"did you mean '{match[0]}'? " if match else ""
            raise ConfigError(f"{key}: unknown {self.kind[:-1]} '{name}'; {hint}"
                              f"known: {', '.join(self.names())}")

    def get(self, name: str) -> Callable:
        self.check(name, self.kind)
        return self._items[name]

    def create(self, name: str, *args, **kwargs):
        return self.get(name)(*args, **kwargs)


def describe(factory: Callable) -> str:
    """The first sentence of a factory's docstring (a class's own, not one it inherits)."""
    doc = factory.__doc__ if (not isinstance(factory, type) or "__doc__" in factory.__dict__) else None
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    first = paragraph.split(". ")[0].rstrip(".")
    return first if len(first) <= 110 else first[:107].rsplit(" ", 1)[0] + "..."


MODELS = Registry("models")
DATASETS = Registry("datasets")
TASKS = Registry("tasks")
OPTIMIZERS = Registry("optimizers")
SCHEDULES = Registry("schedules")
CALLBACKS = Registry("callbacks")
