"""Fine-tuning: start from saved weights (replacing a head of another size) and freeze parts.

``model.weights=PATH`` takes a trainlab checkpoint, a plain state_dict file (torchvision's
ImageNet weights saved with torch.save; a timm/Hugging Face ``pytorch_model.bin``), read with
weights_only=True, or a ``.safetensors`` file. Only the classifier head (a timm model's
get_classifier(), else the last nn.Linear) may differ in shape; any other mismatch is an error
that names the keys. A timm model's file is first prepared as timm does (``timm_zoo.adapt_state``).
``model.freeze=backbone`` trains only the head; ``freeze=layer1,layer2`` freezes those prefixes.
Frozen batch-norm layers become FrozenBatchNorm2d, so their statistics do not drift either.
A model with a ``finetune_target`` (cnn_lstm: ``encoder``) takes an image checkpoint into that
part, and ``freeze=backbone`` freezes that part's backbone (all of it but its last linear layer).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..engine.checkpoint import load_checkpoint
from ..errors import CheckpointError, ConfigError
from .timm_zoo import adapt_state, is_timm
from .zoo import head, replace_module

LOG = logging.getLogger("trainlab")


def read_state_dict(path: str | Path) -> dict:
    obj = _read_safetensors(Path(path)) if str(path).endswith(".safetensors") else load_checkpoint(path)
    state = obj["model"] if isinstance(obj.get("model"), dict) else obj
    state = state.get("state_dict", state) if isinstance(state.get("state_dict"), dict) else state
    tensors = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (not a checkpoint or state_dict)")
    return tensors


def _read_safetensors(path: Path) -> dict:
    """A .safetensors file holds tensors only: nothing in it can run code."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({type(e).__name__}: {e})") from None


def load_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load everything that matches; the head may differ. Returns the keys left as initialised."""
    state = read_state_dict(path)
    target = getattr(model, "finetune_target", None)
    if target and not any(k.startswith(target + ".") for k in state):  # an image checkpoint for the encoder
        model = model.get_submodule(target)
    if is_timm(model):
        state = adapt_state(model, state)
    own = model.state_dict()
    head_name, _ = head(model)
    skipped, bad = [], []
    for k, v in own.items():
        if k not in state:
            (skipped if k.startswith(head_name + ".") else bad).append(k)
        elif state[k].shape != v.shape:
            if k.startswith(head_name + "."):
                skipped.append(k)
            else:
                bad.append(f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}")
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    if bad or unexpected:
        parts = [f"not matching: {', '.join(bad[:6])}" if bad else "",
                 f"unexpected: {', '.join(unexpected[:6])}" if unexpected else ""]
        raise CheckpointError(f"model.weights={path} does not fit model {type(model).__name__} "
                              f"({'; '.join(p for p in parts if p)})")
    model.load_state_dict({k: state[k] for k in own if k not in skipped}, strict=False)
    if skipped:
        LOG.info("model.weights=%s: loaded; new head %s (%s)", path, head_name, ", ".join(skipped))
    return skipped


def freeze(model: nn.Module, spec: str) -> int:
    """Freeze by spec; returns the number of frozen parameters."""
    if spec in ("", "none"):
        return 0
    if spec == "backbone" and getattr(model, "finetune_target", None):
        return freeze(model.get_submodule(model.finetune_target), spec)
    if spec == "backbone":  # everything outside the head, parameters held by the model itself too (a ViT's pos_embed)
        head_name, _ = head(model)

        def frozen(name: str) -> bool:
            return bool(name) and not (name == head_name or name.startswith(head_name + ".")
                                       or head_name.startswith(name + "."))
    else:
        prefixes = [p.strip() for p in spec.split(",") if p.strip()]
        names = dict(model.named_modules())
        unknown = [p for p in prefixes if p not in names]
        if unknown:
            raise ConfigError(f"model.freeze: no module named {unknown[:3]}; top-level modules: "
                              f"{', '.join(n for n, _ in model.named_children())}")

        def frozen(name: str) -> bool:
            return any(name == pre or name.startswith(pre + ".") for pre in prefixes)
    n = 0
    for name, p in model.named_parameters():
        if p.requires_grad and frozen(name):
            p.requires_grad_(False)
            p.frozen_by_recipe = True  # model.unfreeze_epoch opens these only, not a model's own fixed weights
            n += p.numel()
    _freeze_batchnorm(model, frozen)
    return n


def _freeze_batchnorm(model: nn.Module, frozen) -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, m in list(model.named_modules()):
        if not (isinstance(m, nn.BatchNorm2d) and frozen(name)):
            continue
        if is_timm(m):  # timm's BatchNormAct2d also holds its activation: timm's own frozen form keeps it
            from timm.layers import freeze_batch_norm_2d

            replace_module(model, name, freeze_batch_norm_2d(m))
            continue
        new = FrozenBatchNorm2d(m.num_features, eps=m.eps)
        with torch.no_grad():
            new.weight.copy_(m.weight)
            new.bias.copy_(m.bias)
            new.running_mean.copy_(m.running_mean)
            new.running_var.copy_(m.running_var)
        replace_module(model, name, new)
