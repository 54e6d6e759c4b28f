"""Recipes in, Config out: YAML reading, dotted overrides, and type checking while building.

Unknown keys and wrong types are errors that name the key and the closest valid one; the
values themselves are checked by the schema (``schema.validate``) once the Config is built.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from .safe_yaml import load_yaml_file

from ..errors import ConfigError
from .schema import Config, validate


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; allow int->float. Raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if tp is Any:
        return value
    if tp is float:
        return _coerce_float(value, key)
    for kind, accepts, want in _SIMPLE:
        if tp is kind or origin is kind:
            if accepts(value):
                return kind(value) if kind in (list, dict) else value
            raise ConfigError(f"{key}: expected {want}, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")


# (annotation, accepts the value, what the error says was expected); bool is an int to Python
_SIMPLE = [
    (bool, lambda v: isinstance(v, bool), "true/false"),
    (int, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    (str, lambda v: isinstance(v, str), "a string"),
    (list, lambda v: isinstance(v, (list, tuple)), "a list"),
    (dict, lambda v: isinstance(v, dict), "a mapping"),
]


def _coerce_union(value: Any, args: tuple, key: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for a in args:
        if a is type(None):
            continue
        try:
            return _coerce(value, a, key)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")


def _coerce_float(value: Any, key: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    # inf and nan pass every range check written as a comparison (nan fails them all silently
    # in the other direction), so they are refused here once for every float key
    if not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    return float(value)


def _build(cls, data: dict, prefix: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            match = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = (f"; did you mean '{prefix}{match[0]}'?" if match
                    else "; valid keys: " + ", ".join(prefix + n for n in names))
            raise ConfigError(f"unknown config key '{full}'{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
    return cls(**kwargs)


def from_dict(data: dict | None) -> Config:
    cfg = _build(Config, data or {}, "")
    validate(cfg)
    return cfg


def _set_dotted(tree: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{key}': '{p}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``'optim.lr=3e-4'`` -> ``('optim.lr', 0.0003)``; values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form section.key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else None
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '3e-4' as a string; a number is what anyone typing it means.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            pass
    return key, value


def apply_overrides(data: dict, overrides: list[str] | dict) -> dict:
    data = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    for key, value in items:
        _set_dotted(data, key, value)
    return data


def read_recipe(path: str | Path) -> dict:
    path = Path(path)
    data = load_yaml_file(path, "recipe")  # safe YAML: never constructs objects; size, alias and duplicate checks
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def load(recipe: str | Path | dict | Config | None = None, overrides: list[str] | dict = ()) -> Config:
    """Recipe path / dict / Config + overrides -> validated Config. Sets run.name from the file."""
    if isinstance(recipe, Config):
        data = recipe.to_dict()
    elif isinstance(recipe, dict):
        data = recipe
    elif recipe is None:
        data = {}
    else:
        data = read_recipe(recipe)
        data.setdefault("run", {})
        if isinstance(data["run"], dict):
            data["run"].setdefault("name", Path(recipe).stem)
    return from_dict(apply_overrides(data, overrides))


def field_docs(cls=Config, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, doc) for every field, for help text and docs."""
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out += field_docs(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, f.metadata.get("doc", "")))
    return out
