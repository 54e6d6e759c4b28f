"""Where the time of one training step of a recipe goes: torch.profiler over the real Trainer step.

Builds the data, model and task exactly as ``trainlab train`` does, warms up, then profiles
``--steps`` steps of ``Trainer.train_step`` (forward, loss, backward, optimizer) with the
loader's batch production timed apart, and prints the share of data vs compute and the
operators with the most self time.

    python benchmarks/profile_step.py recipes/speed-mnist.yaml [key=value ...] [--steps 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from trainlab import config as config_mod  # noqa: E402
from trainlab.build import build_parts, build_trainer  # noqa: E402
from trainlab.engine.runtime import setup_runtime  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rows", type=int, default=15)
    args = ap.parse_args()

    cfg = config_mod.load(args.recipe, args.overrides)
    device = setup_runtime(cfg, distributed_ok=False)  # the threads and allocator `trainlab train` uses
    torch.manual_seed(cfg.train.seed)
    parts = build_parts(cfg, device)
    trainer = build_trainer(parts)
    trainer.model.train()
    meter = parts.task.meter()
    batches = parts.loaders["train"].iterate(0)
    data_s = step_s = 0.0
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else []))
            prof.__enter__()
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        trainer.train_step(batch, meter, do_step=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i >= args.warmup:
            data_s, step_s = data_s + t1 - t0, step_s + t2 - t1
    prof.__exit__(None, None, None)
    n = args.steps
    print(f"{args.recipe} {' '.join(args.overrides)}: {torch.get_num_threads()} threads, device {device}, "
          f"batch {cfg.data.batch_size}")
    print(f"per step (profiled, so slower than unprofiled): batch production {1e3 * data_s / n:.2f} ms "
          f"({100 * data_s / (data_s + step_s):.1f}%), forward+backward+optimizer {1e3 * step_s / n:.2f} ms")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
