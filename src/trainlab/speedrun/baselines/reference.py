"""The baselines of ``trainlab speedrun``: each lab written the way its reference script does it.

Nothing here is trainlab. Each baseline is the published reference for its dataset, kept to
what the comparison needs:

- ``mnist``: pytorch/examples ``mnist/main.py``: torchvision MNIST with per-sample ToTensor +
  Normalize, a DataLoader (batch 64, 1 worker), the 2-conv/2-linear Net, Adadelta lr 1.0,
  StepLR(1, 0.7).
- ``cifar10``: kuangliu/pytorch-cifar ``main.py``: ImageFolder over the JPEGs with per-sample
  RandomCrop(32, 4) + flip + ToTensor + Normalize, DataLoader (batch 128, 2 workers), the
  CIFAR ResNet-18 (3x3 stem, no max-pool), SGD 0.1 / momentum 0.9 / wd 5e-4, cosine over 200
  epochs.
- ``ptb``: pytorch/examples ``word_language_model``: its Corpus/batchify, a tied 2x200 LSTM with
  dropout 0.2, batch 20, BPTT 35, plain SGD lr 20 with clipping 0.25, the LR divided by 4
  whenever validation loss does not improve.

``run_reference`` trains one of them for a time budget, or until the test metric reaches a
goal (evaluated after each epoch, as the reference scripts do), and returns what it reached.
"""

from __future__ import annotations

import gzip
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DataError


@dataclass
class Baseline:
    """One reference recipe, cut into the pieces the budgeted driver needs."""

    describe: str
    epoch_steps: Callable[[int], Iterator[None]]  # trains one epoch, yielding after every step
    end_epoch: Callable[[int], None]              # the script's per-epoch schedule step
    test: Callable[[], float]                     # the test metric (accuracy or perplexity)
    samples_per_step: int


# ---------------------------------------------------------------------------- MNIST
class MnistNet(nn.Module):
    """pytorch/examples mnist Net."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return F.log_softmax(self.fc2(x), dim=1)


def torchvision_mnist(root: Path, workdir: Path, train: bool):
    """torchvision.datasets.MNIST over the IDX files in ``root`` (unpacked into its MNIST/raw)."""
    from torchvision import datasets, transforms

    raw = workdir / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in Path(root).glob("*-ubyte.gz"):
        if not (raw / gz.name[:-3]).exists():
            with gzip.open(gz) as src, open(raw / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    return datasets.MNIST(str(workdir), train=train, download=False, transform=tf)


def _accuracy(model: nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / total


def _classifier_epoch(model, opt, loader, loss_fn) -> Iterator[None]:
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # the reference scripts read the loss every batch (a sync on a GPU)
        yield


def mnist_baseline(root: Path, workdir: Path) -> Baseline:
    if not list(Path(root).glob("*-ubyte.gz")):
        raise DataError(f"{root}: no MNIST *-ubyte.gz files for the reference baseline")
    train = torch.utils.data.DataLoader(torchvision_mnist(root, workdir, True), batch_size=64, shuffle=True,
                                        num_workers=1)
    test = torch.utils.data.DataLoader(torchvision_mnist(root, workdir, False), batch_size=1000, num_workers=1)
    model = MnistNet()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return Baseline("pytorch/examples mnist: Net, Adadelta lr 1.0, StepLR(1, 0.7), batch 64, torchvision MNIST "
                    "+ ToTensor/Normalize + DataLoader(1 worker)",
                    lambda e: _classifier_epoch(model, opt, train, F.nll_loss), lambda e: sched.step(),
                    lambda: _accuracy(model, test), 64)


# ---------------------------------------------------------------------------- CIFAR-10
def cifar_resnet18() -> nn.Module:
    """kuangliu/pytorch-cifar ResNet18: torchvision's ResNet-18 with a 3x3 stride-1 stem, no max-pool."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def cifar10_baseline(root: Path, workdir: Path) -> Baseline:
    from torchvision import datasets, transforms

    if not (Path(root) / "train").is_dir() or not (Path(root) / "test").is_dir():
        raise DataError(f"{root}: expected the JPEG layout train/<class>/*.jpg and test/<class>/*.jpg")
    norm = transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    tf_train = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), norm])
    tf_test = transforms.Compose([transforms.ToTensor(), norm])
    train = torch.utils.data.DataLoader(datasets.ImageFolder(str(Path(root) / "train"), tf_train),
                                        batch_size=128, shuffle=True, num_workers=2)
    test = torch.utils.data.DataLoader(datasets.ImageFolder(str(Path(root) / "test"), tf_test),
                                       batch_size=100, num_workers=2)
    model = cifar_resnet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200)
    return Baseline("kuangliu/pytorch-cifar: ResNet18, SGD 0.1/0.9/5e-4, cosine over 200 epochs, batch 128, "
                    "ImageFolder + RandomCrop/flip/ToTensor/Normalize + DataLoader(2 workers)",
                    lambda e: _classifier_epoch(model, opt, train, F.cross_entropy), lambda e: sched.step(),
                    lambda: _accuracy(model, test), 128)


# ---------------------------------------------------------------------------- Penn Treebank
def ptb_baseline(root: Path, workdir: Path) -> Baseline:
    from . import word_lm as ref

    names = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
    found = [n + ".gz" if (Path(root) / (n + ".gz")).exists() else n for n in names]
    missing = [n for n in found if not (Path(root) / n).exists()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)} for the reference baseline")
    corpus = ref.Corpus(str(root), tuple(found))
    bsz, eval_bsz, bptt = 20, 10, 35
    train = ref.batchify(corpus.train, bsz, "cpu")
    valid, test = ref.batchify(corpus.valid, eval_bsz, "cpu"), ref.batchify(corpus.test, eval_bsz, "cpu")
    model = ref.RNNModel("LSTM", len(corpus.dictionary), 200, 200, 2, 0.2, tie_weights=True)
    state = {"lr": 20.0, "best": None}

    def epoch_steps(epoch: int) -> Iterator[None]:
        for _ in ref.train_steps(model, train, bsz, bptt, lambda: state["lr"], clip=0.25):
            yield

    def end_epoch(epoch: int) -> None:
        val = ref.evaluate(model, valid, eval_bsz, bptt)
        if state["best"] is None or val < state["best"]:
            state["best"] = val
        else:
            state["lr"] /= 4.0

    return Baseline("pytorch/examples word_language_model: tied 2x200 LSTM, dropout 0.2, batch 20, BPTT 35, "
                    "SGD lr 20 (/4 on a validation plateau), clip 0.25",
                    epoch_steps, end_epoch, lambda: math.exp(ref.evaluate(model, test, eval_bsz, bptt)), bsz * bptt)


BASELINES = {"mnist": mnist_baseline, "cifar10": cifar10_baseline, "ptb": ptb_baseline}


def run_reference(name: str, root: str | Path, *, seconds: Optional[float] = None, goal: Optional[float] = None,
                  mode: str = "max", max_seconds: float = 3600.0, threads: Optional[int] = None,
                  seed: int = 0) -> dict:
    """Train baseline ``name`` for ``seconds`` of wall time, or (with ``goal``) until its test metric,
    read after each epoch, reaches the goal or ``max_seconds`` pass. The clock runs from the first
    training step to the last evaluation; building datasets is timed apart as ``data_s``."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="trainlab-ref-") as tmp:
        t0 = time.perf_counter()
        base = BASELINES[name](Path(root), Path(tmp))
        data_s = time.perf_counter() - t0
        limit = seconds if seconds is not None else max_seconds
        start, steps, epoch, reached_s, value = time.perf_counter(), 0, 0, None, None
        out_of_time = False
        while not out_of_time:
            for _ in base.epoch_steps(epoch):
                steps += 1
                if time.perf_counter() - start >= limit:
                    out_of_time = True
                    break
            if out_of_time:
                break
            base.end_epoch(epoch)
            epoch += 1
            if goal is not None:
                value = base.test()
                if (value >= goal) if mode == "max" else (value <= goal):
                    reached_s = time.perf_counter() - start
                    break
        if value is None or out_of_time:
            value = base.test()
        train_s = time.perf_counter() - start
    return {"baseline": name, "describe": base.describe, "metric": value, "train_s": round(train_s, 2),
            "data_s": round(data_s, 2), "epochs_completed": epoch, "steps": steps, "samples_per_s": round(steps * base.samples_per_step / max(train_s, 1e-9), 1),
            "goal": goal, "reached_goal_s": None if reached_s is None else round(reached_s, 2),
            "threads": torch.get_num_threads()}
