"""Speed records: test-time flip averaging, the speedrun driver and its reference baselines."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from conftest import PTB_DIR, SHARED
from trainlab.config import TaskConfig
from trainlab.errors import ConfigError
from trainlab.registry import TASKS
from trainlab.speedrun import TARGETS, Target, format_summary, recipe_path, speedrun
from trainlab.speedrun.baselines import run_reference

MNIST = SHARED / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.exists(), reason=f"real MNIST not found at {MNIST}")


def test_flip_tta_averages_the_logits_of_image_and_mirror():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5))
    x, y = torch.randn(6, 2, 3, 4), torch.randint(0, 5, (6,))
    plain = TASKS.create("classification", TaskConfig(), 5)
    tta = TASKS.create("classification", TaskConfig(tta="flip"), 5)
    out = tta.step(model, {"inputs": x, "targets": y}, train=False)["outputs"]
    assert torch.allclose(out, (model(x) + model(x.flip(-1))) / 2)
    assert not torch.allclose(out, model(x))
    # training never sees the mirror through TTA (augmentation is the data's job)
    assert torch.allclose(tta.step(model, {"inputs": x, "targets": y}, train=True)["outputs"],
                          plain.step(model, {"inputs": x, "targets": y}, train=True)["outputs"])


def test_every_target_names_an_existing_recipe_with_its_metric():
    from trainlab import config

    for name, target in TARGETS.items():
        cfg = config.load(recipe_path(target))
        if cfg.task.name == "classification":  # no split is carved out of the training data
            assert cfg.data.valid_fraction == 0.0, name
        # honest measurement: the speed recipes never evaluate the test split during training
        assert not cfg.train.eval_test, name
        assert target.met(target.goal) and not target.met(target.goal * (0.9 if target.mode == "max" else 1.1))


def _summary(baseline: dict) -> dict:
    run = {"seed": 0, "acc1": 0.99, "fit_s": 12.0, "first_step_s": 0.5, "data_s": 2.0, "met": True}
    return {"target": "mnist", "metric": "acc1", "goal": 0.99, "budget_s": 15, "mode": "max",
            "recipe": "recipes/speed-mnist.yaml", "overrides": [], "runs": [run, {**run, "seed": 1, "acc1": 0.989}],
            "metric_stats": {"mean": 0.9895, "std": 0.0007, "min": 0.989, "max": 0.99},
            "fit_s_stats": {"mean": 12.0, "std": 0.0}, "data_s_stats": {"mean": 2.0}, "met": 1,
            "hardware": {"cpu": "cpu", "threads": 2, "torch": "2", "trainlab": "0", "cuda": None},
            "reference": baseline}


def test_summary_states_the_comparison_for_each_baseline_mode():
    same = {"mode": "same-time", "describe": "ref", "train_s": 12.0, "steps": 100, "epochs_completed": 0,
            "metric": 0.958, "reached_goal_s": None}
    text = format_summary(_summary(same))
    assert "1/2 runs" in text and "0.9895 ± 0.0007" in text
    assert "error-rate ratio reference / trainlab: 4.00x" in text
    reached = {**same, "mode": "to-target", "reached_goal_s": 120.0, "metric": 0.991, "epochs_completed": 3}
    assert "time-to-target ratio 10.00x" in format_summary(_summary(reached))
    missed = {**same, "mode": "to-target", "train_s": 60.0}
    assert "did not reach 0.99 in 60 s" in format_summary(_summary(missed))


@needs_mnist
def test_speedrun_runs_the_recipe_per_seed_and_writes_the_summary(tmp_path):
    out = tmp_path / "sr"
    summary = speedrun("mnist", runs=2, overrides=(f"data.root={MNIST}", "train.max_steps=6"), out=out,
                       baseline="none")
    assert [r["seed"] for r in summary["runs"]] == [0, 1]
    for r in summary["runs"]:
        assert 0 <= r["acc1"] <= 1 and r["fit_s"] > 0 and r["data_s"] > 0 and r["first_step_s"] > 0
        timing = json.loads((out / f"seed{r['seed']}" / "timing.json").read_text())
        assert timing["fit_s"] == r["fit_s"]
    assert summary["runs"][0]["acc1"] != summary["runs"][1]["acc1"]  # different seeds, different runs
    saved = json.loads((out / "speedrun.json").read_text())
    assert saved["metric_stats"]["mean"] == pytest.approx(sum(r["acc1"] for r in saved["runs"]) / 2)
    assert "speedrun mnist" in (out / "speedrun.md").read_text()
    rf = saved["runs"][0]["roofline"]  # speed-mnist's convnet 8-16-32, 5x5 kernels: about 1.3 M mult-adds per image
    assert 1e6 < rf["macs_per_sample"] < 2e6 and rf["peak_gflops"] > 0
    assert rf["achieved_gflops"] == pytest.approx(6 * rf["macs_per_sample"] * rf["samples_per_s"] / 1e9)
    assert rf["ratio"] == pytest.approx(rf["achieved_gflops"] / rf["peak_gflops"])
    assert "roofline, seed 0: " in (out / "speedrun.md").read_text()
    with pytest.raises(ConfigError, match="already holds runs"):
        speedrun("mnist", out=out)


@pytest.mark.skipif(not (PTB_DIR / "ptb.train.txt.gz").exists() and not (PTB_DIR / "ptb.train.txt").exists(),
                    reason="Penn Treebank not in ../shared/data/ptb")
def test_a_language_model_speedrun_ends_with_its_roofline_per_token(tmp_path):
    """The roofline of an LM is counted on token ids (it once fed the model floats and crashed
    the speedrun after its runs had finished)."""
    summary = speedrun("ptb", runs=1, overrides=(f"data.root={PTB_DIR}", "train.max_steps=4"),
                       out=tmp_path / "sr", baseline="none")
    rf = summary["runs"][0]["roofline"]
    # tied 2x200 LSTM: the 200 x 10,000 decoder (2 M) and two LSTM layers (2 x 4 x 200 x 400) per token
    assert 2.4e6 < rf["macs_per_sample"] < 2.9e6 and rf["ratio"] > 0
    assert summary["runs"][0]["ppl"] > 0 and "roofline, seed 0: " in (tmp_path / "sr" / "speedrun.md").read_text()


def test_unknown_target_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown speedrun 'cifar100'"):
        speedrun("cifar100")


@needs_mnist
@pytest.mark.slow
def test_reference_mnist_baseline_trains_for_its_budget():
    ref = run_reference("mnist", MNIST, seconds=3)
    assert ref["steps"] > 0 and 0.1 < ref["metric"] <= 1 and ref["train_s"] >= 3


def test_reference_baseline_names_missing_files(tmp_path):
    from trainlab.errors import DataError

    with pytest.raises(DataError, match="ptb.train.txt"):
        run_reference("ptb", tmp_path, seconds=1)
    assert Target("x", "acc1", 0.5, 1, "mnist").met(0.6)


def test_reference_driver_stops_at_the_goal_after_a_full_epoch(tmp_path):
    words = "the cat sat on the mat and the dog ate the hat".split()
    for split, n in (("train", 400), ("valid", 60), ("test", 60)):
        lines = [" ".join(words[(i * 3) % len(words):] + words[:(i * 3) % len(words)]) for i in range(n)]
        (tmp_path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ref = run_reference("ptb", tmp_path, goal=1e9, mode="min", max_seconds=120)
    # to-target: the test metric is read after each full epoch, the first one already meets 1e9
    assert ref["epochs_completed"] == 1 and ref["reached_goal_s"] is not None
    assert ref["steps"] == -(-(sum(1 for _ in open(tmp_path / "ptb.train.txt")) * 13 // 20 - 1) // 35)
    assert 1 < ref["metric"] < 1e9


def test_roofline_arithmetic():
    from trainlab.speedrun.roofline import achieved_flops, matmul_peak, roofline, roofline_lines

    assert achieved_flops(1e6, 1000) == 6e9  # 2 FLOPs per mult-add, x 3 for forward and backward
    rf = roofline(33e6, 900, 100e9)
    assert rf["achieved_gflops"] == pytest.approx(178.2) and rf["ratio"] == pytest.approx(1.782)
    assert roofline_lines([{"seed": 0, "roofline": roofline(1e6, 1000, 60e9)}])[1].endswith("10.0% of the peak")
    assert roofline_lines([{"seed": 0, "roofline": None}]) == []
    assert matmul_peak(1, n=64, repeats=1, products=1) > 0
