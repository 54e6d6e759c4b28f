"""Training throughput of ResNet-18 from image files: trainlab's decoded cache vs the reference way.

The baseline is written the way pytorch/examples/imagenet does it: torchvision ImageFolder,
per-sample PIL transforms (RandomResizedCrop, RandomHorizontalFlip, ToTensor, Normalize), a
DataLoader with workers. trainlab decodes each file once into its uint8 cache (timed
separately) and augments whole batches. Same model, batch size, image size and optimizer;
both run in this process, alternating, so machine noise hits both.

    python benchmarks/image_throughput.py [--steps 30] [--repeats 2] [--size 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainlab import config as config_mod
from trainlab.build import build_parts
from trainlab.engine.runtime import setup_runtime
from trainlab.models import build_model

SHARED = Path(os.environ.get("TRAINLAB_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
DATASETS = {  # name -> (trainlab data.name, root, ImageFolder root)
    "tiny-imagenet": ("tiny_imagenet", SHARED / "tiny-imagenet-200", SHARED / "tiny-imagenet-200" / "train"),
    "cats-vs-dogs": ("catsdogs", SHARED / "cats-vs-dogs", SHARED / "cats-vs-dogs" / "training_set"),
    "cifar10": ("cifar10", SHARED / "cifar10-jpg", SHARED / "cifar10-jpg" / "train"),  # the GPU check's
}


def reference_loader(folder: Path, size: int, batch: int, workers: int, pin: bool):
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomResizedCrop(size, scale=(0.35, 1.0)), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ds = datasets.ImageFolder(str(folder), transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, pin_memory=pin,
                                       persistent_workers=workers > 0, drop_last=True), len(ds.classes)


def forever(loader_iter_fn):
    epoch = 0
    while True:
        yield from loader_iter_fn(epoch)
        epoch += 1


def timed(model, opt, batches, steps: int, channels_last: bool, device: torch.device) -> float:
    model.train()
    n, t0 = 0, time.perf_counter()
    for _, (x, y) in zip(range(steps), batches):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        n += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def bench(name: str, args, cache_dir: str) -> dict:
    data_name, root, folder = DATASETS[name]
    cfg = config_mod.load({"data": {"name": data_name, "root": str(root), "size": args.size, "batch_size": args.batch,
                                    "valid_fraction": 0.0, "hflip": True, "random_resized_crop": True,
                                    "cache_dir": cache_dir}, "model": {"name": "resnet18"}})
    cfg.train.device = args.device
    device = setup_runtime(cfg, distributed_ok=False)  # the threads and allocator `trainlab train` uses
    parts = build_parts(cfg, device)
    bundle, decode_s, loader = parts.bundle, parts.data_s, parts.loaders["train"]
    ours = forever(lambda e: ((b["inputs"], b["targets"]) for b in loader.iterate(e)))
    ref_loader, n_cls = reference_loader(folder, args.size, args.batch, args.workers, device.type == "cuda")
    ref = forever(lambda e: iter(ref_loader))
    res = {"trainlab": [], "reference": []}
    for _ in range(args.repeats):
        for label, batches in (("reference", ref), ("trainlab", ours)):
            torch.manual_seed(0)
            model = build_model(cfg.model, max(n_cls, bundle.num_classes), (3, args.size, args.size)).to(device)
            if args.channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            timed(model, opt, batches, 3, args.channels_last, device)  # warm-up (workers start, allocator)
            res[label].append(timed(model, opt, batches, args.steps, args.channels_last, device))
    return {"decode_s": decode_s, **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    ap.add_argument("--channels-last", action="store_true", help="both sides use channels_last")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--datasets", nargs="*", default=["tiny-imagenet", "cats-vs-dogs"], choices=list(DATASETS))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-18 at {args.size}px, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats, baseline workers {args.workers}")
    with tempfile.TemporaryDirectory() as cache:
        for name in args.datasets:
            r = bench(name, args, cache)
            best = {k: max(r[k]) for k in ("trainlab", "reference")}
            print(f"{name}: trainlab decode once {r['decode_s']:.1f} s; samples/s trainlab "
                  f"{', '.join(f'{v:,.0f}' for v in r['trainlab'])} vs reference "
                  f"{', '.join(f'{v:,.0f}' for v in r['reference'])}; ratio {best['trainlab'] / best['reference']:.2f}x")


if __name__ == "__main__":
    main()
