"""Typed, validated configuration: nested dataclasses, YAML as the saved form, dotted overrides.

A recipe is a YAML mapping whose top-level keys are the sections of ``Config``. Every field has a
one-line doc in its ``metadata``; ``trainlab config RECIPE`` prints the resolved value.
Unknown keys and wrong types are errors that name the key and the closest valid one.

``schema.py`` holds the dataclasses and their value checks; ``loading.py`` reads recipes,
applies overrides and checks types. Neither imports torch.
"""

from ..errors import ConfigError
from .loading import apply_overrides, field_docs, from_dict, load, parse_override, read_recipe
from .schema import (Config, DataConfig, ModelConfig, OptimConfig, RunConfig, ScheduleConfig, TaskConfig,
                     TrainConfig, _f, validate)

__all__ = ["Config", "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "ScheduleConfig",
           "TaskConfig", "TrainConfig", "load", "from_dict", "parse_override", "apply_overrides", "read_recipe",
           "field_docs", "validate"]
