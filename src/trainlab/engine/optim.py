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


def param_groups(model: torch.nn.Module, cfg: OptimConfig, include_frozen: bool = False) -> list:
    """The trainable parameters (``include_frozen``: the frozen ones too, for a run that unfreezes
    them later; an optimizer skips a parameter without a gradient), grouped by LR multiplier, the
    head's group first (the LR logged is group 0's). ``optim.norm_lr_scale`` != 1 puts normalization
    layers' parameters apart, their weight decay divided by the same factor so only the step on the
    gradient grows (airbench trains batch-norm shifts 64x faster); ``optim.layer_lr_decay`` < 1 scales
    each layer group (engine/layer_groups.py) by the decay per group between it and the head. The
    schedule applies each group's ``lr_scale`` at every step."""
    params = [p for p in model.parameters() if include_frozen or p.requires_grad]
    layer = {}
    if getattr(cfg, "layer_lr_decay", 1.0) != 1.0:
        from .layer_groups import lr_scales

        layer = lr_scales(model, cfg.layer_lr_decay)
    if cfg.norm_lr_scale == 1.0 and not layer:
        return params
    norm_ids = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    keyed: dict[tuple[float, bool], list] = {}
    for p in params:
        is_norm = id(p) in norm_ids and cfg.norm_lr_scale != 1.0
        keyed.setdefault((layer.get(id(p), 1.0), is_norm), []).append(p)
    groups = []
    for (scale, is_norm), ps in sorted(keyed.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        total = scale * (cfg.norm_lr_scale if is_norm else 1.0)
        wd = cfg.weight_decay / cfg.norm_lr_scale if is_norm else cfg.weight_decay
        groups.append({"params": ps, "lr": cfg.lr * total, "lr_scale": total, "weight_decay": wd})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, include_frozen: bool = False) -> torch.optim.Optimizer:
    params = param_groups(model, cfg, include_frozen)
    if not params:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    return OPTIMIZERS.create(cfg.name, params, cfg)
