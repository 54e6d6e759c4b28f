"""k-fold cross-validation: folds are stratified, disjoint and cover the training split; bad fold
settings are refused naming the key; `trainlab cv` runs every fold, summarises them with an
interval and evaluates the ensemble on the one test split."""

import csv
import json

import pytest
import torch
import yaml

from trainlab import config
from trainlab.cli import main
from trainlab.data.base import fold_assignment
from trainlab.errors import ConfigError, DataError
from trainlab.sweep.cv import mean_interval

from conftest import tiny_recipe


def test_folds_are_stratified_disjoint_and_cover_the_training_split():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 7)
    which = fold_assignment(labels, 5, seed=0)
    assert which.shape == labels.shape and set(which.tolist()) == {0, 1, 2, 3, 4}  # every sample in one fold
    for c, n in ((0, 50), (1, 30), (2, 7)):
        per_fold = torch.bincount(which[labels == c], minlength=5)
        assert int(per_fold.sum()) == n and int(per_fold.max() - per_fold.min()) <= 1, (c, per_fold)
    sizes = torch.bincount(which, minlength=5)
    assert int(sizes.max() - sizes.min()) <= 1  # remainders spread over folds, not piled on fold 0
    assert torch.equal(which, fold_assignment(labels, 5, seed=0)) and not torch.equal(which, fold_assignment(labels, 5, 1))


@pytest.mark.parametrize("overrides, message", [
    (["data.folds=1"], "data.folds"), (["data.folds=5", "data.fold=5"], "data.fold"), (["data.fold=2"], "data.fold"),
])
def test_bad_fold_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.load(tiny_recipe(tmp_path), overrides)


def test_a_text_corpus_refuses_folds(tmp_path):
    from trainlab.data.text import load_corpus

    cfg = config.load({"data": {"name": "ptb", "root": str(tmp_path), "folds": 3}, "task": {"name": "language_model"},
                       "model": {"name": "rnn_lm"}}).data
    with pytest.raises(DataError, match="data.folds"):
        load_corpus(cfg)


def test_mean_interval_is_students_t_over_folds():
    m = mean_interval([0.80, 0.82, 0.78, 0.81, 0.79])
    assert m["mean"] == pytest.approx(0.80) and m["std"] == pytest.approx(0.0158, abs=1e-4)
    assert m["high"] - m["mean"] == pytest.approx(2.776 * m["std"] / 5 ** 0.5)


def test_cv_runs_every_fold_and_evaluates_the_ensemble(tmp_path, capsys):  # noqa: PLR0915
    recipe = tiny_recipe(tmp_path / "unused", data={"max_samples": 160}, train={"epochs": 1})
    del recipe["run"]["dir"]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["cv", str(path), "--folds", "2", "--out", str(tmp_path / "cv")]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 (mean probability)" in out and "95% CI of the mean" in out
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["finished"] == 2 and summary["ensemble"]["models"] == 2
    assert 0 <= summary["ensemble"]["acc1"] <= 1 and summary["test"]["n"] == 2
    rows = list(csv.reader(open(tmp_path / "cv" / "cv.csv")))
    assert [r[0] for r in rows[1:3]] == ["0", "1"] and rows[-1][0] == "ensemble"
    for k in (0, 1):  # each fold validates on its own fold, an ordinary run directory
        cfg = yaml.safe_load((tmp_path / "cv" / "runs" / f"data.fold={k}" / "config.yaml").read_text())
        assert cfg["data"]["folds"] == 2 and cfg["data"]["fold"] == k
    assert "2-fold cross-validation" in (tmp_path / "cv" / "report.html").read_text()
    assert main(["cv", str(path), "--folds", "2", "data.fold=1"]) == 2
    assert "trainlab cv sets data.folds and data.fold itself" in capsys.readouterr().err
