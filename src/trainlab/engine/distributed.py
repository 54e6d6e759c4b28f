"""One distributed path, driven by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

``trainlab train ... train.devices=N`` re-executes itself under ``torch.distributed.run``;
inside, ``setup`` joins the process group (nccl on GPUs, gloo on CPU) and picks the device.
Loaders shard every global batch by rank, DDP averages gradients, and ``reduce_meter`` sums
the meters' running sums over ranks, so metrics and evaluation count every sample once.
Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import ConfigError, DeviceError, DistributedError
from .device import resolve_device

LOG = logging.getLogger("trainlab")


def launched() -> bool:
    """True inside a torchrun worker (even a world of one)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def is_main() -> bool:
    return rank_world()[0] == 0


def setup(device_name: str, threads: Optional[int]) -> torch.device:
    """Join torchrun's process group; returns this rank's device. A no-op outside torchrun."""
    if not launched():
        return resolve_device(device_name)
    world, local = int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    wants_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if wants_cuda:
        resolve_device("cuda")  # the clear error when there is no GPU at all
        if local >= torch.cuda.device_count():
            raise DeviceError(f"train.devices={local_world}: only {torch.cuda.device_count()} GPU(s) visible "
                              f"on this node (nccl needs one GPU per process); lower train.devices")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    # torchrun sets OMP_NUM_THREADS=1; share this node's cores between its processes instead
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if not is_main():  # one voice on the console: rank 0's
        LOG.setLevel(logging.WARNING)
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around the training module; the caller keeps the plain one for evaluation and checkpoints."""
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def shard(index: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch of indices (possibly empty in evaluation)."""
    rank, world = rank_world()
    return index if world == 1 else index.tensor_split(world)[rank]


def all_sum(*values: float):
    """The sums over ranks of a few numbers, in one collective (one number in, one number out)."""
    if not active():
        return values[0] if len(values) == 1 else list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # nccl reduces only GPU tensors
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    out = t.tolist()
    return out[0] if len(values) == 1 else out


def batch_weight(n: int, device: torch.device) -> torch.Tensor:
    """``n`` x world / the global batch, as a tensor on ``device`` (no host sync): DDP's mean of the
    ranks' mean losses, each scaled by it, is the mean over the global batch also when shards are uneven."""
    t = torch.full((1,), float(n), dtype=torch.float32, device=device)
    dist.all_reduce(t)
    return (n * dist.get_world_size()) / t[0]


def _cpu(v):
    return v.detach().cpu() if isinstance(v, torch.Tensor) else v


def reduce_meter(meter):
    """A copy of ``meter`` holding the sums of every rank (the original keeps this rank's own).

    Meters expose their running sums as ``state_dict()`` (numbers and tensors) and, when they
    keep predictions, lists of per-sample tensors; sums add up, lists concatenate.
    """
    if not active():
        return meter
    state = {k: _cpu(v) for k, v in meter.state_dict().items()}
    lists = {k: [_cpu(t) for t in v] for k, v in vars(meter).items()
             if isinstance(v, list) and v and all(isinstance(t, torch.Tensor) for t in v)}
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (state, lists))
    merged = {}
    for key in state:
        parts = [s[key] for s, _ in gathered if s[key] is not None]
        merged[key] = sum(parts[1:], parts[0]) if parts else None
    out = copy.deepcopy(meter)
    device = next((v.device for v in meter.state_dict().values() if isinstance(v, torch.Tensor)),
                  torch.device("cpu"))
    out.load_state_dict(merged, device)
    for key in {k for _, ls in gathered for k in ls}:
        setattr(out, key, [t for _, ls in gathered for t in ls.get(key, [])])
    return out


def lost_peer(error: BaseException, where: str) -> Optional[DistributedError]:
    """The clear error for a collective that failed because another rank or node went away (its
    process was killed, its host lost): gloo and nccl raise RuntimeErrors naming a socket."""
    dist_error = getattr(dist, "DistError", ())
    text = str(error)
    if not isinstance(error, RuntimeError) or not (
            isinstance(error, dist_error) or any(w in text for w in ("gloo", "NCCL", "nccl", "Connection", "Socket"))):
        return None
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return DistributedError(f"another process of this distributed run stopped or cannot be reached ({first[:300]}) "
                            f"{where}. Start the same command on every node again with train.resume=auto")


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers into every rank's module (after rank 0 read a file)."""
    if active():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def torchrun_command(n: int, argv: list[str]) -> list[str]:
    """The command that runs ``python -m trainlab ARGV`` as ``n`` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
            "-m", "trainlab", *argv]


def relaunch(n: int, argv: list[str], device_name: str) -> int:
    """Replace this process by torchrun running ``trainlab ARGV`` as ``n`` local processes (exec, so
    a signal to this process id reaches torchrun, which passes it on to its workers)."""
    check_devices(n, device_name)
    cmd = torchrun_command(n, argv)
    LOG.info("train.devices=%d: launching %s", n, " ".join(cmd[1:]))
    for h in LOG.handlers:
        h.flush()
    os.execv(cmd[0], cmd)
    return 1  # not reached


def check_devices(n: int, device_name: str) -> None:
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if cuda and n > torch.cuda.device_count():
        raise ConfigError(f"train.devices={n} but {torch.cuda.device_count()} GPU(s) are visible (nccl runs "
                          f"one process per GPU); lower train.devices or set train.device=cpu for gloo")
