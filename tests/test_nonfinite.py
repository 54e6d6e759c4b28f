"""The NaN/Inf check of the training loss: deferred (read every N batches, as on a GPU, forced
here on CPU with train.nonfinite_check_every) and exact (each batch at once, the CPU default and
skip_batch). A deferred check still names the first bad batch, and no checkpoint ever holds the
weights of a step taken after a non-finite loss."""

import pytest
import torch
from torch import nn

import trainlab
from trainlab.config import load
from trainlab.engine._finite import GPU_CHECK_EVERY, check_every
from trainlab.errors import ConfigError, NonFiniteLossError

from conftest import tiny_recipe


class NaNAt(nn.Module):
    """A small CNN whose training forward passes number ``bad`` return NaN logits."""

    def __init__(self, bad=(), num_classes=10):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(4 * 13 * 13, num_classes))
        self.bad, self.calls = set(bad), 0

    def forward(self, x):  # [B, 1, 28, 28] -> [B, num_classes]
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls in self.bad:
                out = out * float("nan")
        return out


def _train(tmp_path, model, **train):
    # 256 training samples (data.max_samples): 8 batches of 32 per epoch
    recipe = tiny_recipe(tmp_path / "run", train={"epochs": 2, **train})
    return trainlab.train(recipe, model=model)


def _finite_weights(path):
    state = torch.load(path, weights_only=True)["model"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_the_check_interval_defaults_per_device():
    cfg = load(tiny_recipe("unused")).train
    assert check_every(cfg, torch.device("cpu")) == 1
    assert check_every(cfg, torch.device("cuda")) == GPU_CHECK_EVERY
    cfg.on_nonfinite = "skip_batch"
    assert check_every(cfg, torch.device("cuda")) == 1  # a skip is decided before the optimizer step
    with pytest.raises(ConfigError, match="train.nonfinite_check_every=4 must be >= 1, and 1 with train.on_nonf"):
        load(tiny_recipe("unused", train={"nonfinite_check_every": 4, "on_nonfinite": "skip_batch"}))
    with pytest.raises(ConfigError, match="train.nonfinite_check_every=0"):
        load(tiny_recipe("unused", train={"nonfinite_check_every": 0}))


def test_a_deferred_check_names_the_first_bad_batch_after_training_on(tmp_path):
    model = NaNAt(bad={3})
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, batch 3, step 2 \(noticed 1 "
                                                 r"batch\(es\) later: train.nonfinite_check_every=4\); no checkpoint"):
        _train(tmp_path, model, nonfinite_check_every=4)
    assert model.calls == 4  # the queue was not stopped at the bad batch: read at the 4th
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_checkpoint_is_never_written_after_an_unnoticed_nan(tmp_path):
    model = NaNAt(bad={5})  # step 5 trains on NaN gradients; its last.pt (checkpoint_every_steps) must not be written
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises(NonFiniteLossError, match=f"at epoch 1, batch 5, step 4 .*last good checkpoint: {last}"):
        _train(tmp_path, model, nonfinite_check_every=50, checkpoint_every_steps=2)
    assert model.calls == 6  # noticed when step 6 asked for last.pt, before it was written
    assert not all(torch.isfinite(p).all() for p in model.parameters())  # the model itself is ruined
    assert torch.load(last, weights_only=True)["trainer"]["step"] == 4 and _finite_weights(last)


def test_at_epoch_end_the_check_runs_before_evaluation_and_best_pt(tmp_path):
    model = NaNAt(bad={8})  # the last batch of epoch 1
    with pytest.raises(NonFiniteLossError, match="at epoch 1, batch 8, step 7 .*no checkpoint written yet"):
        _train(tmp_path, model, nonfinite_check_every=50)
    assert model.calls == 8
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


def test_the_deferred_check_trains_exactly_as_the_exact_one(tmp_path):
    keep = ("epoch", "split", "step", "loss", "acc1", "lr", "samples")
    runs = [trainlab.train(tiny_recipe(tmp_path / str(n), train={"epochs": 1, "nonfinite_check_every": n})) for n in (1, 4)]
    a, b = ([{k: r.get(k) for k in keep} for r in run.metrics] for run in runs)
    assert a == b


def test_skip_batch_skips_exactly_the_bad_batches(tmp_path):
    run = _train(tmp_path, NaNAt(bad={2, 9}), on_nonfinite="skip_batch")
    train = [r for r in run.metrics if r["split"] == "train"]
    assert [r.get("skipped_batches") for r in train] == [1, 2]
    assert [r["step"] for r in train] == [7, 14]  # 8 batches per epoch, one skipped in each
    assert train[0]["samples"] == 256 - 32 and _finite_weights(run.dir / "checkpoints" / "last.pt")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine: the deferred check's default")
def test_on_a_gpu_the_check_is_deferred_by_default_and_still_exact(tmp_path):
    model = NaNAt(bad={3})
    with pytest.raises(NonFiniteLossError, match=r"at epoch 1, batch 3, step 2 \(noticed 5 batch\(es\) later: "
                                                 r"train.nonfinite_check_every=100\)"):
        _train(tmp_path, model, device="cuda", deterministic=False)
    assert model.calls == 8  # read at the epoch's end, not at the bad batch
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


@pytest.mark.slow
def test_the_deferred_check_under_ddp_matches_one_process_and_stops_every_rank(tmp_path):
    """Two gloo processes: the loss weights of uneven shards come from an on-device all-reduce and
    the flags are summed at each check; the curves are those of one process (tests/test_distributed.py's
    tolerance), and a NaN stops both ranks with the error."""
    import os
    import subprocess
    import sys

    import yaml

    from conftest import REPO
    from trainlab.tracking import read_metrics

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    common = dict(data={"max_samples": 301, "batch_size": 32},
                  model={"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32], "dropout": 0.0,
                                                         "batch_norm": False}},
                  optim={"name": "sgd", "lr": 0.05},
                  train={"epochs": 2, "seed": 3, "device": "cpu", "nonfinite_check_every": 4})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "two", **common)))
    cmd = [sys.executable, "-m", "trainlab", "train", str(recipe), "train.devices=2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = trainlab.train(tiny_recipe(tmp_path / "one", **common))
    two, ref = read_metrics(tmp_path / "two"), read_metrics(one.dir)
    assert [(r["epoch"], r["split"], r["samples"]) for r in two] == [(r["epoch"], r["split"], r["samples"]) for r in ref]
    for a, b in zip(two, ref):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    bad = subprocess.run(cmd + ["optim.lr=1e12", f"run.dir={tmp_path / 'nan'}"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0
    assert bad.stderr.count("train.nonfinite_check_every=4)") >= 1 and "loss became" in bad.stderr
    assert not list((tmp_path / "nan" / "checkpoints").glob("*.pt"))
