"""The schema's shared parts: the field helper, the section base class and its one error shape."""

from __future__ import annotations

from dataclasses import field
from typing import Any, ClassVar

from ..errors import ConfigError


def _f(default, doc: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc}, **kw)
    return field(default=default, metadata={"doc": doc}, **kw)


class _Section:
    """Shared by the section dataclasses: ``section`` is the recipe key, used in error messages."""

    section: ClassVar[str]

    def _require(self, rules: dict[str, tuple[bool, str]]) -> None:
        # one message shape for every value error: 'optim.lr=-0.1 must be > 0'
        for name, (ok, why) in rules.items():
            if not ok:
                _fail(f"{self.section}.{name}", getattr(self, name), why)

    def validate(self) -> None:
        """Value checks that the field types alone cannot express."""


def _fail(key: str, value: Any, why: str):
    raise ConfigError(f"{key}={value!r} {why}")


def _is_size(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0
    return isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)
