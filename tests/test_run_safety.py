"""Nothing of a user's is lost or mixed: one writer per run directory, no overwriting, resumes
that continue the same experiment, checkpoints that never run code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import trainlab
from conftest import REPO, tiny_recipe
from trainlab.errors import ConfigError
from trainlab.tracking.lock import RunLock, RunLockedError

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from trainlab.tracking.lock import RunLock\n"
        f"lock = RunLock({str(run_dir)!r}).acquire(); print('locked', flush=True); sys.stdin.read()")],
        env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"in use by process {holder.pid}"):
            trainlab.train(tiny_recipe(run_dir, train={"resume": "auto"}))
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is stale, and the next run takes it over
    run = trainlab.train(tiny_recipe(run_dir, train={"epochs": 1, "resume": "auto"}))
    assert run.best_checkpoint.exists()
    assert json.loads((run_dir / "run.lock").read_text() or "{}") == {}  # released at the end


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass


def test_a_folder_with_the_users_files_is_not_a_run_directory(tmp_path):
    (tmp_path / "config.yaml").write_text("mine: true\n")
    (tmp_path / "notes.txt").write_text("my notes")
    for resume in (None, "auto"):
        with pytest.raises(ConfigError, match="not empty .*files that are not a trainlab run's"):
            trainlab.train(tiny_recipe(tmp_path, train={"resume": resume}))
    assert (tmp_path / "config.yaml").read_text() == "mine: true\n" and sorted(os.listdir(tmp_path)) == [
        "config.yaml", "notes.txt"]


def test_training_again_into_a_finished_run_is_refused(tmp_path):
    first = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
    before = {p.name: p.read_bytes() for p in (first.dir / "checkpoints").iterdir()}
    metrics = (first.dir / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="not empty .*another run"):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}, optim={"lr": 1e-2}))
    assert {p.name: p.read_bytes() for p in (first.dir / "checkpoints").iterdir()} == before
    assert (first.dir / "metrics.jsonl").read_text() == metrics


def test_a_resume_that_changes_the_experiment_is_refused(tmp_path):
    trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
    config = (tmp_path / "run" / "config.yaml").read_text()
    for change, key in (({"optim": {"lr": 0.1}}, "optim.lr"), ({"data": {"max_samples": 128}}, "data.max_samples")):
        with pytest.raises(ConfigError, match=f"{key}: .* -> .*train.resume_allow_changes=\\[{key}\\]"):
            trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 2, "resume": "auto"}, **change))
    assert (tmp_path / "run" / "config.yaml").read_text() == config  # nothing rewritten
    # allowed changes go through and are recorded
    trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 2, "resume": "auto", "threads": 1}))
    trainlab.train(tiny_recipe(tmp_path / "run", optim={"lr": 1e-3},
                               train={"epochs": 3, "resume": "auto", "resume_allow_changes": ["optim.lr"]}))
    notes = [ln for ln in (tmp_path / "run" / "command.txt").read_text().splitlines() if "#" in ln]
    assert "train.epochs 1 -> 2" in notes[0] and "train.threads None -> 1" in notes[0]
    assert "optim.lr 0.002 -> 0.001" in notes[1]


CLEANUP = '''
from pathlib import Path
Path("ran.txt").write_text("the checkpoint ran my code")
from torch import nn
class Model(nn.Sequential):
    def __init__(self, num_classes=10, in_channels=1, input_size=(28, 28)):
        super().__init__(nn.Flatten(), nn.Linear(in_channels * input_size[0] * input_size[1], num_classes))
'''


def test_loading_a_checkpoint_never_imports_the_module_it_names(tmp_path, monkeypatch):
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
    ckpt = torch.load(run.best_checkpoint, weights_only=True)
    ckpt["config"]["model"].update(class_path="cleanup:Model", init_args={})  # a hostile (or foreign) checkpoint
    ckpt["model"] = {"1.weight": torch.zeros(10, 784), "1.bias": torch.zeros(10)}
    hostile = tmp_path / "hostile.pt"
    torch.save(ckpt, hostile)
    work = tmp_path / "work"
    work.mkdir()
    (work / "cleanup.py").write_text(CLEANUP)
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError, match="never imports the code it names.*--trust-class-path"):
        trainlab.load(hostile)
    with pytest.raises(ConfigError, match="never imports"):
        trainlab.evaluate(hostile)
    out = subprocess.run([sys.executable, "-m", "trainlab", "eval", str(hostile)], env=ENV, cwd=work,
                         capture_output=True, text=True)
    assert out.returncode != 0 and "never imports" in out.stderr and "Traceback" not in out.stderr
    assert not (work / "ran.txt").exists()
    model = trainlab.load(hostile, trust_class_path=True)  # the user's explicit choice
    assert type(model).__name__ == "Model" and (work / "ran.txt").exists()


def test_an_unwritable_run_folder_is_one_clear_message(tmp_path):
    (tmp_path / "a_file").write_text("x")
    for bad in (tmp_path / "a_file", tmp_path / "a_file" / "run"):
        with pytest.raises(ConfigError, match="run.dir=.*is a file|cannot write the run directory"):
            trainlab.train(tiny_recipe(bad))
    out = subprocess.run([sys.executable, "-m", "trainlab", "train", "recipes/demo.yaml",
                          f"run.dir={tmp_path / 'a_file' / 'run'}", "train.epochs=1"],
                         env=ENV, cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "cannot write the run directory" in out.stderr and "Traceback" not in out.stderr


class DiskFullAtEpoch2(trainlab.Callback):
    name = "disk_full"

    def on_epoch_end(self, trainer, epoch, partial):
        if epoch == 1:
            class Full:
                name = trainer.writer.file.name

                def write(self, text):
                    raise OSError(28, "No space left on device")

                def close(self):
                    raise OSError(28, "No space left on device")  # a full disk fails the final flush too

            trainer.writer.file = Full()


def test_a_full_disk_mid_run_stops_clearly_and_the_run_resumes(tmp_path):
    from trainlab.errors import TrainlabError

    with pytest.raises(TrainlabError, match="metrics.jsonl: No space left on device .*resume with train.resume=auto"):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 3}), callbacks=[DiskFullAtEpoch2()])
    resumed = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 3, "resume": "auto"}))
    full = trainlab.train(tiny_recipe(tmp_path / "full", train={"epochs": 3}))
    strip = lambda ms: [{k: v for k, v in r.items() if k not in ("time", "seconds", "samples_per_s")} for r in ms]  # noqa: E731
    assert strip(resumed.metrics) == strip(full.metrics)


def test_a_run_that_failed_before_measuring_anything_can_be_run_again_in_place(tmp_path):
    from trainlab.errors import NonFiniteLossError

    with pytest.raises(NonFiniteLossError):
        trainlab.train(tiny_recipe(tmp_path / "run", optim={"lr": 1e30}))  # NaN in the first steps
    metrics = tmp_path / "run" / "metrics.jsonl"
    assert (tmp_path / "run" / "config.yaml").exists() and (not metrics.exists() or metrics.stat().st_size == 0)
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))  # the fixed setting, same folder
    assert run.best_checkpoint.exists()
    with pytest.raises(ConfigError, match="not empty"):  # now it has measured something: kept
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
