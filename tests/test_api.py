"""The Python API: your own model class by import path, objects passed in from a notebook, kills."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import trainlab
from trainlab.tracking import read_metrics

from _hold import HOLD
from conftest import REPO, tiny_recipe

MY_MODULE = '''
import torch
from torch import nn


class MyConvNet(nn.Module):
    """A course-style model: a no-argument constructor, 28x28 grey input, 10 classes."""

    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.head = nn.Linear(width * 14 * 14, 10)

    def forward(self, x):
        x = torch.relu(torch.max_pool2d(self.conv(x), 2))
        return self.head(x.flatten(1))
'''


def test_user_model_class_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(MY_MODULE)
    monkeypatch.chdir(tmp_path)
    recipe = tiny_recipe(tmp_path / "run")
    recipe["model"] = {"class_path": "my_models:MyConvNet", "init_args": {"width": 4}}
    run = trainlab.train(recipe)
    assert run.test["acc1"] > 0.2
    model = trainlab.load(run.best_checkpoint)
    assert type(model).__name__ == "MyConvNet" and model.conv.out_channels == 4
    # the checkpoint holds no code: it names the class, which is imported again from the user's module
    ckpt = torch.load(run.best_checkpoint, weights_only=True)
    assert ckpt["config"]["model"]["class_path"] == "my_models:MyConvNet"


def test_missing_user_module_is_a_clear_error(tmp_path):
    recipe = tiny_recipe(tmp_path / "run")
    recipe["model"] = {"class_path": "no_such_module_xyz:Net"}
    with pytest.raises(trainlab.ConfigError, match="cannot import module 'no_such_module_xyz'"):
        trainlab.train(recipe)


def test_model_and_datasets_passed_directly(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, 6, 6, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # a learnable rule
    train = torch.utils.data.TensorDataset(x[:300], y[:300])
    valid = torch.utils.data.TensorDataset(x[300:], y[300:])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(72, 2))
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 10}, optim={"lr": 0.01}),
                         model=model, datasets={"train": train, "valid": valid}, class_names=["neg", "pos"])
    valid_acc = [r["acc1"] for r in run.metrics if r["split"] == "valid"]
    assert valid_acc[-1] > 0.8


def test_keyword_sections_override_the_recipe(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run"), "train.epochs=1", optim={"lr": 1e-3})
    assert run.config.optim.lr == 1e-3 and run.config.train.epochs == 1
    assert [r["epoch"] for r in run.metrics if r["split"] == "train"] == [1]


def _start_cli_run(tmp_path, run_dir, common, hold=None):
    recipe = tmp_path / f"{run_dir.name}.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(run_dir, **common)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    if hold is not None:
        env["TRAINLAB_TEST_HOLD"] = str(hold)
    return subprocess.Popen([sys.executable, "-m", "trainlab", "train", str(recipe)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)


def _strip(ms):
    return [{k: v for k, v in r.items() if k not in ("time", "seconds", "samples_per_s")} for r in ms]


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    """SIGKILL a real training process part-way, resume with train.resume=auto, compare."""
    kill_dir, full_dir, held = tmp_path / "killed", tmp_path / "full", tmp_path / "held"
    common = {"train": {"epochs": 4, "checkpoint_every_steps": 2, "callbacks": [{**HOLD[0], "step": 5}]},
              "data": {"max_samples": 512}}
    proc = _start_cli_run(tmp_path, kill_dir, common, hold=held)
    _wait_for(held, proc)  # held at step 5: last.pt is from step 4, step 5's work is lost with the kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = trainlab.train(tiny_recipe(kill_dir, **{**common, "train": {**common["train"], "resume": "auto"}}))
    full = trainlab.train(tiny_recipe(full_dir, **common))
    assert _strip(read_metrics(resumed.dir)) == _strip(full.metrics)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; what job schedulers send first
def test_ctrl_c_saves_a_resumable_checkpoint_and_exits_cleanly(tmp_path, sig):
    run_dir, held = tmp_path / "interrupted", tmp_path / "held"
    common = {"train": {"epochs": 6, "callbacks": HOLD}, "data": {"max_samples": 512}}
    proc = _start_cli_run(tmp_path, run_dir, common, hold=held)
    _wait_for(held, proc)  # the run holds at step 3 until the signal arrives: no race with its speed
    assert proc.poll() is None
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with" in err and "Traceback" not in err
    resumed = trainlab.train(tiny_recipe(run_dir, **{**common, "train": {**common["train"], "resume": "auto"}}))
    full = trainlab.train(tiny_recipe(tmp_path / "full", **common))
    assert _strip(read_metrics(resumed.dir)) == _strip(full.metrics)
