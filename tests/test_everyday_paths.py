"""Everyday paths that used to break: a max_steps run's best.pt, a model passed from Python,
progress where stderr is not a terminal."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import trainlab
from conftest import tiny_recipe


def test_a_run_stopped_by_max_steps_before_an_epoch_end_leaves_best_pt(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 5, "max_steps": 3}))
    assert run.best_checkpoint.exists()
    final = run.metrics[-1]
    assert final["checkpoint"] == "best.pt" and final["best_epoch"] is None
    assert final["weights"] == "weights at step 3: train.max_steps ended before the first epoch end"
    assert json.loads((run.dir / "eval_test.json").read_text())["best_step"] == 3
    # best.pt holds exactly the weights tested: the last ones
    best, last = trainlab.load(run.best_checkpoint).state_dict(), trainlab.load(run.last_checkpoint).state_dict()
    assert all(torch.equal(best[k], last[k]) for k in best)
    assert trainlab.evaluate(run.best_checkpoint)["acc1"] == pytest.approx(run.test["acc1"])


def test_a_max_steps_pause_after_an_epoch_keeps_that_epochs_best_pt(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 5, "max_steps": 11}))  # 8 steps an epoch
    final = run.metrics[-1]
    assert final["best_epoch"] == 1 and final["weights"] == "best checkpoint, epoch 1"
    assert torch.load(run.best_checkpoint, weights_only=True)["trainer"]["step"] == 8
    # resumed, a later epoch end replaces the pause's best.pt as usual
    resumed = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 3, "resume": "auto"}))
    assert resumed.metrics[-1]["best_epoch"] in (1, 2, 3)


class CourseNet(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                                 nn.Flatten(), nn.Linear(width * 16, 10))

    def forward(self, x):
        return self.net(x)


def test_a_model_passed_from_python_is_what_the_run_records(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}), model=CourseNet(width=8))
    cfg = trainlab.config.load(run.dir / "config.yaml")
    assert cfg.model.class_path == "test_everyday_paths:CourseNet"  # not the recipe's convnet
    model = trainlab.load(run.best_checkpoint)  # importable and built with its defaults: loads
    assert isinstance(model, CourseNet)
    assert trainlab.evaluate(run.best_checkpoint)["acc1"] == pytest.approx(run.test["acc1"])


def test_a_python_model_that_cannot_be_rebuilt_says_how_to_reload_it(tmp_path):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}), model=CourseNet(width=4))
    with pytest.raises(trainlab.CheckpointError, match=r"model=YourModel\(\.\.\.\)"):
        trainlab.load(run.best_checkpoint)  # the default width 8 does not match the saved weights
    model = trainlab.load(run.best_checkpoint, model=CourseNet(width=4))
    saved = torch.load(run.best_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())  # the trained weights
    assert model.class_names == [str(i) for i in range(10)] and not model.training  # mnist5k's digits

    class Local(CourseNet):  # defined in a function: no import path
        pass

    run = trainlab.train(tiny_recipe(tmp_path / "local", train={"epochs": 1}), model=Local())
    with pytest.raises(trainlab.CheckpointError, match="passed to trainlab.train from Python"):
        trainlab.load(run.best_checkpoint)


def test_progress_is_logged_when_stderr_is_not_a_terminal(tmp_path):
    recipe = tiny_recipe(tmp_path / "run", train={"epochs": 2, "log_every_steps": 2}, data={"max_samples": 640})
    recipe["run"]["progress"] = True
    trainlab.train(recipe)  # from the Python API: nobody set up logging, train.log still gets the lines
    lines = [ln for ln in (tmp_path / "run" / "train.log").read_text().splitlines() if " batch " in ln]
    assert lines and all("loss" in ln and "samples_s" in ln for ln in lines)
    seen = {}
    for ln in lines:
        epoch, batch = ln.split()[3], ln.split()[5]
        seen.setdefault(epoch, []).append(batch)
    n = int(lines[0].split()[5].split("/")[1])
    interval = max(2, -(-n // 10))  # log_every_steps, or a tenth of the epoch if that is more
    expected = [f"{b}/{n}" for b in range(interval, n, interval)]
    assert seen == {"1/2": expected, "2/2": expected}


class TupleNet(CourseNet):
    def forward(self, x):
        return self.net(x), "aux"


def test_a_model_returning_a_tuple_is_a_clear_error(tmp_path):
    with pytest.raises(trainlab.DataError, match="model TupleNet returned a tuple, not a tensor of logits"):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}), model=TupleNet())


def test_a_model_with_the_wrong_number_of_outputs_is_a_clear_error(tmp_path):
    with pytest.raises(trainlab.DataError, match=r"returned shape \(32, 3\) for a batch of 32; expected .*10 classes"):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}),
                       model=nn.Sequential(nn.Flatten(), nn.Linear(784, 3)))


@pytest.mark.parametrize("sample, message", [
    (lambda: (__import__("PIL.Image").Image.new("L", (6, 6)), 0), "input of type Image, not a tensor .*ToTensor"),
    (lambda: (torch.zeros(1, 6, 6), "cat"), "label 'cat' .*class indices"),
    (lambda: torch.zeros(1, 6, 6), "each sample must be a pair"),
])
def test_a_python_dataset_of_the_wrong_kind_is_a_clear_error(tmp_path, sample, message):
    class Bad(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return sample()

    with pytest.raises(trainlab.DataError, match=message):
        trainlab.train(tiny_recipe(tmp_path / "run"), datasets={"train": Bad()}, class_names=["a", "b"])


def test_train_report_writes_the_runs_report_and_says_how_to_open_it(tmp_path, capsys):
    import yaml

    from trainlab.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "run", train={"epochs": 1})))
    assert main(["train", str(recipe), "--report"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "run" / "report.html").exists() and "open it: python -m webbrowser file://" in out
    assert "test (best checkpoint, epoch 1)" in out
