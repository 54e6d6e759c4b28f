"""Device and precision selection. Asking for hardware that is not there is an error."""

from __future__ import annotations

import contextlib

import torch

from ..errors import DeviceError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if torch.version.cuda is None:
            raise DeviceError(f"train.device={name}: this torch build ({torch.__version__}) is CPU-only. "
                              f"Install a CUDA build (see https://pytorch.org/get-started/locally/) or "
                              f"use train.device=cpu")
        if not torch.cuda.is_available():
            raise DeviceError(f"train.device={name}: torch has CUDA {torch.version.cuda} but sees no GPU "
                              f"(driver missing or CUDA_VISIBLE_DEVICES empty?); use train.device=cpu")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"train.device={name}: only {torch.cuda.device_count()} GPU(s) visible")
        return dev
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError("train.device=mps: Apple MPS is not available on this machine/torch build")
        return torch.device("mps")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """Autocast context for bf16/fp16; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu" and precision == "fp16":
        raise DeviceError("train.precision=fp16 needs a GPU; use bf16 on CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type
