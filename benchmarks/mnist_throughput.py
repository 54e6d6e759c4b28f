"""Training throughput on full MNIST: trainlab's in-memory path vs the reference way.

The baseline is written the way pytorch/examples/mnist does it: torchvision.datasets.MNIST,
per-sample ToTensor + Normalize transforms, a DataLoader. Both train the SAME model (the
mnist.yaml convnet) with the same optimizer and batch size for the same number of steps, in
this one process, alternating, so machine noise hits both. Prints samples/s and the ratio.

    python benchmarks/mnist_throughput.py [--root ../shared/data/mnist] [--steps 150] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import trainlab
from trainlab import config as config_mod
from trainlab.build import build_parts
from trainlab.engine.runtime import setup_runtime
from trainlab.models import build_model
from trainlab.speedrun.baselines import torchvision_mnist

REPO = Path(__file__).resolve().parent.parent


def reference_loader(root: Path, batch_size: int, workdir: Path, workers: int):
    """pytorch/examples' MNIST input pipeline (torchvision dataset, per-sample transforms, DataLoader)."""
    return torch.utils.data.DataLoader(torchvision_mnist(root, workdir, train=True), batch_size=batch_size,
                                       shuffle=True, num_workers=workers)


def timed_steps(model, opt, batches, steps: int) -> float:
    """Train ``steps`` optimizer steps from an iterator of (x, y); returns samples/s."""
    model.train()
    n, t0 = 0, time.perf_counter()
    for _, (x, y) in zip(range(steps), batches):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers of the baseline")
    args = ap.parse_args()

    cfg = config_mod.load(REPO / "recipes" / "mnist.yaml", [f"data.root={args.root}"])
    device = setup_runtime(cfg, distributed_ok=False)  # the threads and allocator `trainlab train` uses
    torch.manual_seed(0)
    parts = build_parts(cfg, device)
    decode_s = parts.data_s
    loader = parts.loaders["train"]

    def trainlab_batches():
        epoch = 0
        while True:
            for b in loader.iterate(epoch):
                yield b["inputs"], b["targets"]
            epoch += 1

    results = {"trainlab": [], "reference": []}
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_loader(Path(args.root), cfg.data.batch_size, Path(tmp), args.workers)
        for _ in range(args.repeats):
            for name, batches in (("reference", iter(ref)), ("trainlab", trainlab_batches())):
                torch.manual_seed(0)
                model = build_model(cfg.model, 10, (1, 28, 28))
                opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
                timed_steps(model, opt, batches, 5)  # warm-up
                results[name].append(timed_steps(model, opt, batches, args.steps))
    best = {k: max(v) for k, v in results.items()}
    print(f"trainlab {trainlab.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {cfg.data.batch_size}, {args.steps} steps x {args.repeats} repeats")
    print(f"trainlab data decode (IDX -> uint8 tensor, once): {decode_s:.2f} s")
    for k, v in results.items():
        print(f"{k:10s} samples/s: " + ", ".join(f"{x:,.0f}" for x in v) + f"  (best {best[k]:,.0f})")
    print(f"ratio trainlab / reference: {best['trainlab'] / best['reference']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
