"""The runtime a run needs before anything is built: threads, device (torchrun-aware), the CPU
allocator setting and deterministic kernels. Every tool that trains or times training calls
``setup_runtime`` so it measures what ``trainlab train`` runs."""

from __future__ import annotations

import os

import torch

from ..config import Config
from . import distributed


def set_deterministic() -> None:
    """Deterministic kernels: on CPU they already are; on CUDA this makes resume bit-exact."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def setup_runtime(cfg: Config, distributed_ok: bool = True) -> torch.device:
    """Apply ``train.threads``, ``train.keep_freed_memory`` and ``train.deterministic``; return the
    device (under torchrun: this rank's, with the process group initialised; call
    ``distributed.teardown()`` at the end)."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if distributed_ok:
        device = distributed.setup(tc.device, tc.threads)  # resolve_device outside torchrun
    else:
        from .device import resolve_device

        device = resolve_device(tc.device)
    if device.type == "cpu" and tc.keep_freed_memory:
        from . import device as device_mod

        device_mod.keep_freed_memory()
    if tc.deterministic:
        set_deterministic()
    return device
