"""``trainlab bench devices RECIPE [--steps N]``: the same training steps on the CPU, one GPU and
every larger GPU count (DDP under torchrun), as one table.

A step is the Trainer's own ``train_step`` on the recipe's data, model and global batch, so
the figures are those of ``trainlab train``. Each step is split into the time blocked in the
loader (data wait) and the rest; on a GPU both ends are synchronised so the clock measures
work done, not work queued. Speedup is against the CPU row; scaling efficiency of k GPUs is
(time per step on one GPU / time per step on k) / k.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .. import config as config_mod
from ..engine import distributed

LOG = logging.getLogger("trainlab")
NO_GPU = "no GPU found: CPU only"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(loader):
    epoch = 0
    while True:
        yield from loader.iterate(epoch)
        epoch += 1


def measure(cfg, steps: int, warmup: int = 3) -> dict:
    """Time ``steps`` optimizer steps (after ``warmup``) on this process's device, set up as
    ``trainlab train`` sets it up (threads, allocator, determinism: ``setup_runtime``)."""
    from ..build import build_parts, build_trainer
    from ..engine.runtime import setup_runtime

    device = setup_runtime(cfg)
    torch.manual_seed(cfg.train.seed)
    parts = build_parts(cfg, device)
    trainer = build_trainer(parts, splits=("train", cfg.train.monitor.split(".")[0]))
    task, loaders, model = parts.task, parts.loaders, trainer.model
    meter, batches = task.meter(), _batches(loaders["train"])
    model.train()
    wait = total = 0.0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        _sync(device)
        t1 = time.perf_counter()
        trainer.train_step(batch, meter, do_step=True)
        _sync(device)
        if i >= warmup:
            wait, total = wait + t1 - t0, total + time.perf_counter() - t0
    _, world = distributed.rank_world()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {"device": device.type, "name": name, "processes": world, "step_s": total / steps,
            "wait_share": wait / max(total, 1e-12), "steps_per_epoch": trainer.steps_per_epoch,
            "batch": cfg.data.batch_size}


def _torchrun(recipe: str, overrides: list, k: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={k}", "-m",
               "trainlab.sweep.devices", recipe, "--steps", str(steps), "--json", str(out), *overrides]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            LOG.warning("%d-GPU run failed:\n%s", k, proc.stderr[-2000:])
            return {}
        return json.loads(out.read_text())


def bench_devices(recipe: str, overrides: list, steps: int = 50) -> tuple[list[dict], list[str]]:
    """(rows, notes): CPU, then 1..N GPUs."""
    cpu = config_mod.load(recipe, [*overrides, "train.device=cpu", "train.devices=1"])
    rows, notes = [measure(cpu, steps)], []
    n = torch.cuda.device_count()
    if n == 0:
        notes.append(NO_GPU)
    else:
        rows.append(measure(config_mod.load(recipe, [*overrides, "train.device=cuda", "train.devices=1"]), steps))
        for k in range(2, n + 1):
            rows.append(_torchrun(recipe, [*overrides, "train.device=cuda"], k, steps) or
                        {"device": "cuda", "processes": k, "failed": True})
    return _derive(rows), notes


def _derive(rows: list[dict]) -> list[dict]:
    cpu = rows[0]["step_s"]
    one_gpu = next((r["step_s"] for r in rows if r["device"] == "cuda" and r.get("processes") == 1), None)
    for r in rows:
        if "step_s" not in r:
            continue
        r["epoch_s"] = r["step_s"] * r["steps_per_epoch"]
        r["samples_per_s"] = r["batch"] / r["step_s"]
        r["speedup"] = cpu / r["step_s"]
        if r["device"] == "cuda" and one_gpu:
            r["efficiency"] = one_gpu / r["step_s"] / r["processes"]
    return rows


def format_table(rows: list[dict], notes: list[str]) -> str:
    head = (f"{'device':<34} {'procs':>5} {'ms/step':>9} {'s/epoch':>9} {'samples/s':>10} {'speedup':>8} "
            f"{'efficiency':>10} {'data wait':>9}")
    lines = [*notes, head]
    for r in rows:
        if "step_s" not in r:
            lines.append(f"{r['device']:<34} {r['processes']:>5} failed (see the log above)")
            continue
        eff = f"{r['efficiency']:.0%}" if "efficiency" in r else "-"
        lines.append(f"{r['name'][:34]:<34} {r['processes']:>5} {r['step_s'] * 1e3:>9.1f} {r['epoch_s']:>9.1f} "
                     f"{r['samples_per_s']:>10,.0f} {r['speedup']:>7.2f}x {eff:>10} {r['wait_share']:>9.1%}")
    return "\n".join(lines)


def _worker(argv: list[str]) -> int:
    """Entry point of each torchrun process: measure, rank 0 writes the JSON."""
    p = argparse.ArgumentParser(prog="python -m trainlab.sweep.devices")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    try:
        row = measure(config_mod.load(a.recipe, a.overrides), a.steps)
        if distributed.is_main():
            Path(a.json).write_text(json.dumps(row), encoding="utf-8")
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
