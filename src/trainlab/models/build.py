"""Building a model from its config: by registered name or by the import path of the user's class.

Kept apart from the package's ``__init__`` (which imports every built-in model to register it)
so that a model built from other models, such as the video encoder, can import it at module level.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from pathlib import Path

from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..registry import MODELS


class UntrustedClassPath(ConfigError):
    """A checkpoint names a module that is not imported: loading it would run that module's code."""


def import_class(class_path: str, search_dirs=(), allow_import: bool = True, source: str = "") -> type:
    """'pkg.module:ClassName' -> the class. Looks in the working directory and ``search_dirs``.

    ``allow_import=False`` (a checkpoint's config, which is data): only a module that is already
    imported is used; importing one would run whatever code it holds."""
    module_name, _, attr = class_path.partition(":")
    if not allow_import and module_name not in sys.modules:
        raise UntrustedClassPath(
            f"{source or 'this checkpoint'} names model.class_path={class_path!r}; loading a checkpoint never "
            f"imports the code it names. If you trust this checkpoint and its module, allow it: "
            f"--trust-class-path on the command line, trust_class_path=True in trainlab.load/evaluate, or "
            f"import {module_name} yourself first")
    for d in [str(Path.cwd()), *map(str, search_dirs)]:
        if d not in sys.path:
            sys.path.append(d)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"model.class_path={class_path!r}: cannot import module '{module_name}' ({e}); "
                          f"run from the folder that holds it or add it to PYTHONPATH") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ConfigError(f"model.class_path={class_path!r}: module '{module_name}' has no '{attr}'")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"model.class_path={class_path!r} is not an nn.Module class")
    return cls


def _check_args(factory, args: dict, what: str) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    for key in args:
        if key not in params:
            match = difflib.get_close_matches(key, list(params), n=1, cutoff=0.5)
            hint = f"; did you mean 'model.init_args.{match[0]}'?" if match else \
                f"; it takes: {', '.join(params) or 'no arguments'}"
            raise ConfigError(f"unknown model argument 'model.init_args.{key}' for {what}{hint}")


def build_model(cfg: ModelConfig, num_classes: int | None = None, input_shape=None,
                search_dirs=(), inferred: dict | None = None, from_checkpoint: bool = False,
                trust_class_path: bool = True, source: str = "") -> nn.Module:
    """Construct, then apply model.weights / model.pretrained and model.freeze.

    ``inferred``: constructor arguments the data implies (a bundle's ``model_kwargs()``, e.g.
    ``vocab_size``); like num_classes/input_shape they are passed only where the constructor takes
    them. ``from_checkpoint``: the weights will come from a checkpoint, so nothing is downloaded or
    read from model.weights; freezing still applies because it changes the module structure.
    ``trust_class_path=False``: the config is a checkpoint's, so its class_path is used only if
    its module is already imported (see ``import_class``).
    """
    if cfg.class_path:
        factory, what = import_class(cfg.class_path, search_dirs, trust_class_path, source), cfg.class_path
    else:
        factory, what = MODELS.get(cfg.name), f"model '{cfg.name}'"
    _check_args(factory, cfg.init_args, what)
    params = inspect.signature(factory).parameters
    inferred = dict(inferred or {})
    if num_classes is not None:
        inferred["num_classes"] = num_classes
    if input_shape is not None:
        if len(input_shape) == 4:  # a clip's (T, C, H, W): the model is built for its frames
            input_shape = tuple(input_shape)[1:]
        inferred["in_channels"] = input_shape[0]
        inferred["input_size"] = tuple(input_shape[1:])
    if "input_size" in inferred:
        inferred["input_size"] = tuple(inferred["input_size"])
    kwargs = {k: v for k, v in inferred.items() if k in params}
    kwargs.update(cfg.init_args)
    if cfg.pretrained and not from_checkpoint:
        if "pretrained" not in params:
            raise ConfigError(f"model.pretrained=true: {what} has no published pretrained weights; "
                              f"use model.weights=PATH")
        kwargs["pretrained"] = True
    try:
        model = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"cannot build {what} with {kwargs}: {e}") from None
    if cfg.weights and not from_checkpoint:
        from .finetune import load_weights

        load_weights(model, cfg.weights)
    if cfg.freeze != "none":
        from .finetune import freeze

        freeze(model, cfg.freeze)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable); model.parameters() yields a tied/shared tensor once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
