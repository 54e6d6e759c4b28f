"""Optimizers by name. Each factory takes (params, OptimConfig)."""

from __future__ import annotations

import torch

from ..config import OptimConfig
from ..registry import OPTIMIZERS


@OPTIMIZERS.register("sgd")
def sgd(params, cfg: OptimConfig):
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def adam(params, cfg: OptimConfig):
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                            weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamw")
def adamw(params, cfg: OptimConfig):
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("nadam")
def nadam(params, cfg: OptimConfig):
    return torch.optim.NAdam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params, cfg: OptimConfig):
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, eps=cfg.eps,
                               weight_decay=cfg.weight_decay)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    return OPTIMIZERS.create(cfg.name, params, cfg)
