"""The engine's extension point (callbacks) and the task contract (declared metric directions)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import trainlab
from conftest import tiny_recipe
from trainlab import Callback
from trainlab.errors import ConfigError, DataError
from trainlab.registry import CALLBACKS, TASKS
from trainlab.tasks.base import Task
from trainlab.tasks.classification import ClassificationMeter, ClassificationTask

VOLATILE = {"time", "seconds", "samples_per_s"}


def comparable(metrics):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in metrics]


class WeightAverage(Callback):
    """A user's callback with state: a running mean of the weights and the steps it has seen."""

    name = "weight_average"

    def __init__(self):
        self.steps, self.mean, self.events = 0, None, []

    def on_fit_start(self, trainer, resumed):
        self.events.append(("fit_start", resumed))

    @torch.no_grad()
    def on_step_end(self, trainer):
        self.steps += 1
        w = {k: v.detach().float().clone() for k, v in trainer.model.state_dict().items() if v.is_floating_point()}
        if self.mean is None:
            self.mean = w
        else:
            for k, v in w.items():
                self.mean[k] += (v - self.mean[k]) / self.steps

    def on_epoch_end(self, trainer, epoch, partial):
        self.events.append(("epoch_end", epoch, partial))

    def on_eval_end(self, trainer, epoch, evals, partial):
        self.events.append(("eval_end", epoch, sorted(evals)))

    def on_fit_end(self, trainer, result):
        self.events.append(("fit_end", sorted(result)[:1]))

    def state_dict(self):
        return {"steps": self.steps, "mean": self.mean}

    def load_state_dict(self, state):
        self.steps, self.mean = state["steps"], state["mean"]


def test_a_python_callback_sees_every_event_and_resumes_exactly(tmp_path):
    full_cb = WeightAverage()
    full = trainlab.train(tiny_recipe(tmp_path / "full", train={"epochs": 3}), callbacks=[full_cb])
    assert full_cb.steps == 24  # 256 samples, batch 32: 8 steps x 3 epochs
    assert full_cb.events[0] == ("fit_start", False) and full_cb.events[-1][0] == "fit_end"
    assert [e for e in full_cb.events if e[0] == "epoch_end"] == [("epoch_end", i, False) for i in range(3)]
    assert ("eval_end", 0, ["train", "valid"]) in full_cb.events

    trainlab.train(tiny_recipe(tmp_path / "part", train={"epochs": 3, "max_steps": 11}), callbacks=[WeightAverage()])
    resumed_cb = WeightAverage()
    resumed = trainlab.train(tiny_recipe(tmp_path / "part", train={"epochs": 3, "resume": "auto"}),
                             callbacks=[resumed_cb])
    assert resumed_cb.events[0] == ("fit_start", True)
    assert resumed_cb.steps == 24
    assert all(torch.equal(full_cb.mean[k], resumed_cb.mean[k]) for k in full_cb.mean)
    got = [r for r in comparable(resumed.metrics) if r["step"] != 11]  # the paused run's extra evaluation
    assert got == comparable(full.metrics)
    saved = torch.load(resumed.last_checkpoint, weights_only=True)["callbacks"]
    assert saved["weight_average"]["steps"] == 24 and "best_checkpoint" in saved


def test_resuming_without_a_callbacks_state_is_refused(tmp_path):
    trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1}))
    with pytest.raises(ConfigError, match="holds no state for callback 'weight_average'"):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 2, "resume": "auto"}),
                       callbacks=[WeightAverage()])


@CALLBACKS.register("stop_after_first_epoch")
class StopAfterFirstEpoch(Callback):
    def __init__(self, message: str = "stop"):
        self.message = message

    def on_eval_end(self, trainer, epoch, evals, partial):
        return True


class Recorder(Callback):
    """Named by import path in a recipe (this test module is importable as ``test_callbacks``)."""

    name = "recorder"
    seen: list = []

    def __init__(self, tag: str):
        self.tag = tag

    def on_fit_end(self, trainer, result):
        Recorder.seen.append((self.tag, trainer.state.epoch))


def test_callbacks_named_in_a_recipe(tmp_path):
    Recorder.seen.clear()
    recipe = tiny_recipe(tmp_path / "run", train={"epochs": 5, "callbacks": [
        {"name": "stop_after_first_epoch", "message": "enough"}, {"name": "test_callbacks:Recorder", "tag": "t"}]})
    run = trainlab.train(recipe)
    assert max(r["epoch"] for r in run.metrics if r["split"] == "train") == 1  # asked to stop after epoch 1
    assert Recorder.seen == [("t", 1)]


@pytest.mark.parametrize("spec, message", [
    ("no_such_callback", "unknown callback 'no_such_callback'"),
    ({"tag": "x"}, "needs a 'name'"),
    ({"name": "stop_after_first_epoch", "bogus": 1}, "does not take"),
    ("no_such_module_xyz:Thing", "cannot import callback"),
    (3, "must be a name or a mapping"),
])
def test_bad_callback_entries_are_clear_errors(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        trainlab.train(tiny_recipe(tmp_path / "run", train={"callbacks": [spec]}))


def test_two_callbacks_with_one_name_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="share the name weight_average"):
        trainlab.train(tiny_recipe(tmp_path / "run"), callbacks=[WeightAverage(), WeightAverage()])
    with pytest.raises(ConfigError, match="not a trainlab.Callback"):
        trainlab.train(tiny_recipe(tmp_path / "run2"), callbacks=[object()])


# ---------------------------------------------------------------------- the task contract
class ErrorMeter(ClassificationMeter):
    def compute(self):
        out = super().compute()
        return {"loss": out["loss"], "err": 1.0 - out["acc1"], "samples": out["samples"]}


@TASKS.register("error_rate_test")
class ErrorRate(ClassificationTask):
    """A task whose headline metric is lower-is-better and whose name no suffix rule knows."""

    metrics = {"loss": "min", "err": "min"}
    primary_metric = "err"
    log_metrics = ("err",)

    def meter(self, keep_predictions=False):
        return ErrorMeter(self.num_classes, keep_predictions)


def _err_run(path, lr):
    return trainlab.train(tiny_recipe(path, task={"name": "error_rate_test"},
                                      train={"epochs": 4, "monitor": "valid.err"}, optim={"lr": lr}))


def test_a_declared_lower_is_better_metric_drives_best_checkpoint_and_ranking(tmp_path):
    from trainlab.analysis.compare import ranking
    from trainlab.analysis.rundata import RunData
    from trainlab.sweep import results as sweep_results

    good, bad = _err_run(tmp_path / "good", 2e-3), _err_run(tmp_path / "bad", 1e-6)
    valid = [(r["epoch"], r["err"]) for r in good.metrics if r["split"] == "valid"]
    best_epoch = min(valid, key=lambda t: (t[1], t[0]))[0]  # the first epoch of the lowest error
    assert torch.load(good.best_checkpoint, weights_only=True)["trainer"]["epoch"] == best_epoch - 1
    assert json.loads((good.dir / "task.json").read_text())["metrics"] == {"loss": "min", "err": "min"}
    assert good.metrics[-1]["best_epoch"] == best_epoch

    runs = [RunData.load(bad.dir, "bad"), RunData.load(good.dir, "good")]
    _, rows, why = ranking(runs, {})
    assert [r[1] for r in rows] == ["good", "bad"] and "lower is better" in why
    specs = [SimpleNamespace(name=n, cell=n, labels={}, seed=0) for n in ("bad", "good")]
    for s in specs:
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / s.name).symlink_to(tmp_path / s.name)
        (tmp_path / s.name / "done.json").write_text("{}")  # finished, as the sweep marks its runs
    rows = sweep_results.run_rows(specs, tmp_path, {})
    assert [c["cell"] for c in sweep_results.cell_rows(rows, [])] == ["good", "bad"]


def test_a_monitor_the_task_does_not_declare_stops_before_training(tmp_path):
    with pytest.raises(ConfigError, match="'acc1' is not a metric of task ErrorRate"):
        trainlab.train(tiny_recipe(tmp_path / "run", task={"name": "error_rate_test"}))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_task_declaration_is_checked_when_registered():
    class Bad(Task):
        metrics = {"loss": "min", "mae": "lower"}

    with pytest.raises(ValueError, match="'max' or 'min'"):
        TASKS.register("bad_direction")(Bad)

    class Undeclared(Task):
        primary_metric = "mae"

    with pytest.raises(ValueError, match="'mae' is named but not declared"):
        TASKS.register("undeclared")(Undeclared)


def test_a_run_without_a_task_record_uses_the_built_in_names_only(tmp_path):
    from trainlab.directions import run_direction

    assert run_direction(tmp_path, "valid.ppl") == "min" and run_direction(tmp_path, "valid.acc5") == "max"
    with pytest.raises(DataError, match="better high or low"):
        run_direction(tmp_path, "valid.wer")
    (tmp_path / "task.json").write_text(json.dumps({"metrics": {"wer": "min"}}))
    assert run_direction(tmp_path, "valid.wer") == "min"


def test_a_last_pt_written_before_callbacks_existed_still_resumes(tmp_path):
    """The old layout kept best/best_epoch/bad_evals in 'trainer' and Lookahead at the top level."""
    from trainlab.engine.checkpoint import load_checkpoint, save_checkpoint

    full = trainlab.train(tiny_recipe(tmp_path / "full", train={"epochs": 2, "early_stopping_patience": 5}))
    trainlab.train(tiny_recipe(tmp_path / "old", train={"epochs": 1, "early_stopping_patience": 5}))
    ckpt = load_checkpoint(tmp_path / "old" / "checkpoints" / "last.pt")
    states = ckpt.pop("callbacks")
    ckpt["trainer"].update(best=states["best_checkpoint"]["best"], best_epoch=states["best_checkpoint"]["best_epoch"],
                           bad_evals=states["early_stopping"]["bad_evals"])
    save_checkpoint({k: v for k, v in ckpt.items() if k != "format"}, tmp_path / "old" / "checkpoints" / "last.pt")
    resumed = trainlab.train(tiny_recipe(tmp_path / "old", train={"epochs": 2, "early_stopping_patience": 5,
                                                                  "resume": "auto"}))
    assert comparable(resumed.metrics) == comparable(full.metrics)
