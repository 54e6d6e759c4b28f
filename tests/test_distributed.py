"""DDP on CPU with gloo: 2 processes match 1 process, evaluation counts each sample once."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

import trainlab
from trainlab.data.base import ImageSet
from trainlab.data.loaders import BatchTransform, TensorLoader
from trainlab.engine import distributed
from trainlab.errors import ConfigError
from trainlab.tracking import read_metrics

from conftest import REPO, tiny_recipe

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _curves(run_dir):
    keep = ("epoch", "split", "loss", "acc1", "samples", "lr")
    return [{k: r.get(k) for k in keep} for r in read_metrics(run_dir)]


def test_two_gloo_processes_match_one_process(tmp_path):
    """Same global batch (32 = 2 x 16; the tail of 301 % 32 = 13 splits 7 + 6, weighted by DDP's loss
    scaling): the same loss trajectory; the checkpoint evaluates as it was logged."""
    common = dict(data={"max_samples": 301, "batch_size": 32},
                  model={"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32],
                                                         "dropout": 0.0, "batch_norm": False}},
                  optim={"name": "sgd", "lr": 0.05}, train={"epochs": 2, "seed": 3, "device": "cpu"})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "two", **common)))
    proc = subprocess.run([sys.executable, "-m", "trainlab", "train", str(recipe), "train.devices=2"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = trainlab.train(tiny_recipe(tmp_path / "one", **common))
    two, ref = _curves(tmp_path / "two"), _curves(one.dir)
    assert [(r["epoch"], r["split"], r["samples"]) for r in two] == \
        [(r["epoch"], r["split"], r["samples"]) for r in ref]
    for a, b in zip(two, ref):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
        assert a["acc1"] == pytest.approx(b["acc1"], abs=1 / 301 + 1e-9), (a, b)
    # rank 0 alone wrote: one run directory, one checkpoint set, and it loads in a single process
    logged = json.loads((tmp_path / "two" / "eval_test.json").read_text())
    again = trainlab.evaluate(tmp_path / "two" / "checkpoints" / "best.pt")
    assert again["samples"] == logged["samples"] and again["acc1"] == pytest.approx(logged["acc1"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "r.yaml", "two"]


def test_evaluation_counts_each_sample_once_with_an_uneven_world(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(REPO / "tests" / "helpers" / "ddp_eval_once.py"), str(out)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["samples"] == 13 and got["index"] == list(range(13))  # no padding duplicates, none lost
    # training: each global batch of 4 split 2 + 2 between ranks; the tail of 1 is dropped for both
    data = ImageSet(torch.zeros(13, 1, 4, 4, dtype=torch.uint8), torch.zeros(13, dtype=torch.long))
    one = TensorLoader(data, 4, shuffle=True, seed=0, transform=BatchTransform([0.5], [0.25]),
                       device=torch.device("cpu"))
    global_batches = [b.tolist() for b in one.index_batches(1)][:3]
    assert got["train_len"] == 3
    assert [a + b for a, b in zip(*got["train_shards"])] == global_batches


def test_devices_beyond_the_gpus_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"train.devices=\d+ but \d+ GPU"):
        distributed.check_devices(torch.cuda.device_count() + 1, "cuda")


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 1,
                    reason="no GPU on this machine: the nccl / one-process-per-GPU path needs CUDA")
def test_single_gpu_and_nccl_runs(tmp_path):
    n = torch.cuda.device_count()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "gpu", train={"device": "cuda", "deterministic": False})))
    proc = subprocess.run([sys.executable, "-m", "trainlab", "train", str(recipe), f"train.devices={n}"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "gpu" / "eval_test.json").read_text())["samples"] > 0


@pytest.mark.slow
def test_a_killed_distributed_run_resumes_to_the_same_metrics(tmp_path):
    import signal
    import time

    common = dict(data={"max_samples": 256}, model={"init_args": {"channels": [8, 16], "hidden": [32],
                                                                  "dropout": 0.0, "batch_norm": False}},
                  train={"epochs": 3, "device": "cpu", "checkpoint_every_steps": 3, "devices": 2})
    runs = {}
    for name in ("killed", "full"):
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / name, **common)))
        runs[name] = [sys.executable, "-m", "trainlab", "train", str(recipe)]
    proc = subprocess.Popen(runs["killed"], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # torchrun (exec'd in place of trainlab) stops its workers
    proc.wait(timeout=120)
    assert not (tmp_path / "killed" / "eval_test.json").exists(), "finished before it was killed"
    for cmd in (runs["killed"] + ["train.resume=auto"], runs["full"]):
        done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in (tmp_path / "killed" / "train.log").read_text()
    killed, full = read_metrics(tmp_path / "killed"), read_metrics(tmp_path / "full")
    assert [(r["epoch"], r["split"], r["step"]) for r in killed] == [(r["epoch"], r["split"], r["step"]) for r in full]
    for a, b in zip(killed, full):  # rank sums are added in another order after a resume: float rounding only
        assert {k: pytest.approx(v, rel=1e-6) for k, v in a.items() if k in ("loss", "acc1", "lr", "samples")} == \
            {k: v for k, v in b.items() if k in ("loss", "acc1", "lr", "samples")}
