"""Reading a YAML file a user handed us (a recipe, a sweep or lab file) without surprises.

``yaml.safe_load`` already never constructs objects or runs code. On top of it: a size limit,
a limit on how far aliases expand (a "billion laughs" file is a few lines that expand to
gigabytes), and duplicate keys are an error (YAML lets the last one win silently, so a recipe
that sets ``lr`` twice would quietly use the second). The limits can be raised with the
environment variables ``TRAINLAB_MAX_YAML_BYTES`` and ``TRAINLAB_MAX_YAML_NODES``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

MAX_BYTES = 1 << 20      # 1 MiB: the largest recipe in the repo is a few kB
MAX_NODES = 100_000      # values after alias expansion


def _limit(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must be an integer") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"{loader.name}, line {key_node.start_mark.line + 1}: key '{key}' appears twice in "
                              f"the same mapping (first on line {seen[key] + 1}); YAML would silently keep the "
                              f"last one, so remove one of them")
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _count(value: Any, limit: int) -> int:
    """Nodes of ``value`` with every alias expanded, stopping once past ``limit``."""
    n, stack = 0, [value]
    while stack and n <= limit:
        v = stack.pop()
        n += 1
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return n


def load_yaml_file(path: str | Path, what: str = "recipe") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    max_bytes, max_nodes = _limit("TRAINLAB_MAX_YAML_BYTES", MAX_BYTES), _limit("TRAINLAB_MAX_YAML_NODES", MAX_NODES)
    size = path.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{path}: {size:,} bytes is larger than a {what} can be ({max_bytes:,}); "
                          f"raise TRAINLAB_MAX_YAML_BYTES if it really is one")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        hint = " (it looks like UTF-16: convert it with iconv -f UTF-16 -t UTF-8)" if \
            path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}){hint}") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    finally:
        loader.dispose()
    if _count(data, max_nodes) > max_nodes:
        raise ConfigError(f"{path}: expands to more than {max_nodes:,} values (aliases repeated inside "
                          f"aliases?); raise TRAINLAB_MAX_YAML_NODES if it really is that large")
    return data
