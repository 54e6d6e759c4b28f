"""What a resume may change. A resumed run continues the saved one; a change that keeps it the
same experiment (more epochs, another device, fewer threads, logging) is allowed and recorded,
any other one (a learning rate, a dataset, a model) is refused naming the keys, unless the
user lists it in ``train.resume_allow_changes``."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

# keys whose change keeps a resumed run the same experiment
RESUMABLE = {
    "train.epochs", "train.max_steps", "train.device", "train.devices", "train.threads", "train.resume",
    "train.resume_allow_changes", "train.log_every_steps", "train.checkpoint_every_steps", "train.nonfinite_check_every", "train.keep_freed_memory",
    "train.compile", "data.num_workers", "data.cache_dir", "data.cache_max_gb", "data.eval_batch_size",
    "run.progress", "run.tensorboard", "run.tensorboard_graph", "run.dir", "run.root", "run.name",
}


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) and k in ("data", "model", "optim", "schedule", "task", "train", "run") and not prefix:
            out.update(flatten(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


def resume_changes(saved: dict, new: dict, allow: list, source: str) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every changed key; ConfigError for a change not allowed."""
    a, b = flatten(saved), flatten(new)
    changed = [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    refused = [c for c in changed if c[0] not in RESUMABLE and c[0] not in allow]
    if refused:
        shown = "; ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in refused[:8])
        keys = ",".join(k for k, _, _ in refused)
        raise ConfigError(f"resuming {source} with a different config: {shown}. A resumed run must continue the "
                          f"same experiment; start a new run, or allow the change deliberately with "
                          f"train.resume_allow_changes=[{keys}]")
    return changed
