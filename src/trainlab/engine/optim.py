"""Optimizers by name. Each factory takes (params, OptimConfig)."""

from __future__ import annotations

import torch

from ..config import OptimConfig
from ..registry import OPTIMIZERS


@OPTIMIZERS.register("sgd")
def sgd(params, cfg: OptimConfig):
    """SGD with momentum (optim.momentum) and optional Nesterov."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params, cfg: OptimConfig):
    """Adam (Kingma & Ba); weight decay as an L2 penalty."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                            weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params, cfg: OptimConfig):
    """AdamW: Adam with decoupled weight decay."""
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("nadam")
def nadam(params, cfg: OptimConfig):
    """NAdam: Adam with Nesterov momentum."""
    return torch.optim.NAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params, cfg: OptimConfig):
    """RMSprop with optional momentum."""
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps,
                               weight_decay=cfg.weight_decay)


NORM_LAYERS = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list:
    """The trainable parameters, with normalization layers' in a group of their own when
    ``optim.norm_lr_scale`` != 1: its ``lr_scale`` is applied by the schedule at every step, and its
    weight decay is divided by the same factor, so only the step on the gradient grows (airbench
    trains batch-norm shifts 64x faster than the convolutions)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if cfg.norm_lr_scale == 1.0:
        return trainable
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    norm = [p for p in trainable if id(p) in norm_ids]
    other = [p for p in trainable if id(p) not in norm_ids]
    groups = [{"params": other}] if other else []
    if norm:
        groups.append({"params": norm, "lr": cfg.lr * cfg.norm_lr_scale, "lr_scale": cfg.norm_lr_scale,
                       "weight_decay": cfg.weight_decay / cfg.norm_lr_scale})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = param_groups(model, cfg)
    if not params:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    return OPTIMIZERS.create(cfg.name, params, cfg)
