"""Model anatomy: per-layer output shapes and parameter counts for a given input size."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..models import build_model, count_parameters


def parse_input(text: str) -> tuple[int, ...]:
    """'1x28x28' or '3,64,64' -> (1, 28, 28)."""
    try:
        dims = tuple(int(v) for v in text.lower().replace(",", "x").split("x") if v)
    except ValueError:
        raise ConfigError(f"--input {text!r}: expected sizes like 1x28x28") from None
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError(f"--input {text!r}: expected positive sizes like 1x28x28")
    return dims


def model_for_summary(target: str, input_shape, num_classes: int) -> tuple[nn.Module, tuple]:
    """A registered model name, a recipe (.yaml) or a checkpoint (.pt) -> (model, input shape)."""
    path = Path(target)
    if path.suffix in (".pt", ".pth") and path.is_file():
        from ..api import load

        model = load(path)
        return model, tuple(input_shape or model.trainlab_meta["input_shape"])
    if path.suffix in (".yaml", ".yml"):
        from .. import config as config_mod

        cfg = config_mod.load(path)
        mcfg = cfg.model
    else:
        mcfg = ModelConfig(name=target)
    if input_shape is None:
        raise ConfigError("--input is required for a model name or recipe (e.g. --input 1x28x28)")
    return build_model(mcfg, num_classes, input_shape), tuple(input_shape)


def summarize(model: nn.Module, input_shape, depth: int = 4) -> str:
    import torchinfo

    stats = torchinfo.summary(model, input_size=(1, *input_shape), depth=depth, verbose=0, device="cpu",
                              col_names=("output_size", "num_params", "trainable"), row_settings=("var_names",))
    total, trainable = count_parameters(model)
    return (f"{stats}\n\ninput {tuple(input_shape)}: {total:,} parameters "
            f"({trainable:,} trainable, {total - trainable:,} frozen), "
            f"{sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20:.2f} MB of weights")


def layer_shapes(model: nn.Module, input_shape) -> list[tuple[str, tuple]]:
    """(module name, output shape) for each leaf module, from one forward pass."""
    out, hooks = [], []
    for name, mod in model.named_modules():
        if not list(mod.children()):
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: out.append((name, tuple(o.shape))) if torch.is_tensor(o) else None))
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return out
