"""Device and precision selection. Asking for hardware that is not there is an error."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import sys

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


_MALLOC_KEPT = False


def keep_freed_memory() -> bool:
    """CPU training on glibc (Linux): keep freed memory in the process for reuse instead of handing
    every large block back to the kernel when it is freed. By default glibc serves each activation
    tensor above its mmap threshold with a fresh mmap, so every step page-faults (and zeroes) the
    same hundreds of megabytes again: 40-100 k minor faults per speednet step at batch 512 here,
    1-2.5 s of system time per 12 steps. With mmap off (M_MMAP_MAX=0) and a 1 GiB trim threshold
    the heap is reused and those faults drop to about 1 k per step. Process-wide, applied once;
    returns whether it is in effect (False off glibc)."""
    global _MALLOC_KEPT
    if _MALLOC_KEPT:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    _MALLOC_KEPT = bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))
    if _MALLOC_KEPT:
        logging.getLogger("trainlab").debug("glibc malloc: mmap off, trim threshold 1 GiB (train.keep_freed_memory)")
    return _MALLOC_KEPT


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
