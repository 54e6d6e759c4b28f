"""Real on-disk sizes: write the model the way trainlab writes it and measure the file.

A weights-only file is what ``best.pt`` holds (weights, config, meta); a full checkpoint
is what ``last.pt`` holds, whose optimizer state (Adam keeps two tensors per parameter)
makes it about three times larger. Tied tensors are stored once by torch.save.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..config import OptimConfig
from ..engine.checkpoint import save_checkpoint
from ..engine.optim import build_optimizer


def parameter_bytes(model: nn.Module) -> int:
    """Bytes of the parameters in memory, each tied tensor once."""
    seen = {}
    for p in model.parameters():
        seen[id(p)] = p.numel() * p.element_size()
    return sum(seen.values())


def _optimizer_state(model: nn.Module, optim: OptimConfig) -> dict:
    """The optimizer's state after one step, on a copy (the step must not move the weights)."""
    twin = copy.deepcopy(model).cpu()
    opt = build_optimizer(twin, optim)
    for p in twin.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    opt.step()  # creates the per-parameter state (momentum, second moments)
    return opt.state_dict()


def disk_sizes(model: nn.Module, optim: OptimConfig | None = None, extra: dict | None = None,
               directory: str | Path | None = None) -> dict:
    """{'weights_only': bytes, 'full_checkpoint': bytes, 'optimizer': name} measured on real files,
    written to ``directory`` (kept) or to a temporary folder (removed)."""
    optim = optim or OptimConfig()
    state = {k: v.detach().cpu() for k, v in model.state_dict(keep_vars=False).items()}
    weights = {"model": state, **(extra or {})}
    has_trainable = any(p.requires_grad for p in model.parameters())
    full = {**weights, "optimizer": _optimizer_state(model, optim)} if has_trainable else dict(weights)
    if directory is not None:
        return _measure(weights, full, Path(directory), optim.name)
    with tempfile.TemporaryDirectory(prefix="trainlab-size-") as d:
        return _measure(weights, full, Path(d), optim.name)


def _measure(weights: dict, full: dict, d: Path, optimizer: str) -> dict:
    a = save_checkpoint(weights, d / "weights_only.pt")
    b = save_checkpoint(full, d / "full_checkpoint.pt")
    return {"weights_only": os.path.getsize(a), "full_checkpoint": os.path.getsize(b), "optimizer": optimizer}
