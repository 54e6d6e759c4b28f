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

from trainlab import config as config_mod, registry  # noqa: E402
from trainlab.data import build_data  # noqa: E402
from trainlab.engine import Trainer, resolve_device  # noqa: E402
from trainlab.models import build_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rows", type=int, default=15)
    args = ap.parse_args()

    cfg = config_mod.load(args.recipe, args.overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    bundle = build_data(cfg.data)
    loaders = bundle.make_loaders(cfg, device)
    model = build_model(cfg.model, inferred=bundle.model_kwargs())
    task = registry.TASKS.create(cfg.task.name, cfg.task, bundle.num_classes)
    trainer = Trainer(cfg, model, task, loaders, device)
    trainer.model.train()
    meter = task.meter()
    batches = loaders["train"].iterate(0)
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
