"""Checkpoint disagreement: a B built to differ from A on a known set of samples; McNemar."""

import csv
import json
import math

import pytest
import torch

import trainlab
from trainlab.analysis.diff import diff_checkpoints
from trainlab.analysis.stats import mcnemar
from trainlab.data import build_data
from trainlab.engine.checkpoint import load_checkpoint, save_checkpoint

from conftest import tiny_recipe


def test_mcnemar_on_hand_checked_tables():
    # b=10, c=2: exact two-sided p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096
    r = mcnemar(10, 2)
    assert r["method"] == "exact binomial" and r["p_value"] == pytest.approx(158 / 4096)
    # b=30, c=14: chi2 = (|30 - 14| - 1)^2 / 44 = 225 / 44; p from the chi-square(1) survival function
    r = mcnemar(30, 14)
    assert r["statistic"] == pytest.approx(225 / 44)
    assert r["p_value"] == pytest.approx(0.023739, abs=1e-5)
    assert mcnemar(5, 5)["p_value"] == 1.0 and mcnemar(0, 0)["p_value"] == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    assert r["p_value"] == pytest.approx(scipy_stats.chi2.sf(225 / 44, 1))
    assert mcnemar(3, 12)["p_value"] == pytest.approx(scipy_stats.binomtest(3, 15).pvalue)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trainlab.train(tiny_recipe(tmp_path_factory.mktemp("diff") / "run"))


def logits_by_id(model, cfg):
    """A's logits on the test split, computed here without the library's loaders."""
    bundle = build_data(cfg.data)
    test = bundle.splits["test"]
    meta = model.trainlab_meta
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        logits = model((test.images.float() / 255 - mean) / std)
    return test.ids, test.labels, logits


def test_diff_finds_exactly_the_samples_a_bias_change_flips(run, tmp_path):
    a = run.best_checkpoint
    model = trainlab.load(a)
    ids, labels, logits = logits_by_id(model, run.config)
    k = 3  # raise class 3's bias by just enough to flip the 5 samples closest to choosing it
    gap = logits.max(1).values - logits[:, k]
    candidates = gap[gap > 0].sort().values
    delta = float((candidates[4] + candidates[5]) / 2)
    expected = {ids[i] for i in range(len(ids)) if 0 < gap[i] < delta}  # those already predicting 3 stay
    assert len(expected) == 5
    ckpt = load_checkpoint(a)
    bias_key = [key for key in ckpt["model"] if key.endswith("bias")][-1]
    ckpt["model"][bias_key] = ckpt["model"][bias_key].clone()
    ckpt["model"][bias_key][k] += delta
    b = save_checkpoint({key: v for key, v in ckpt.items() if key != "format"}, tmp_path / "b.pt")

    result = diff_checkpoints(a, b, out=tmp_path / "out", sheet_size=4)
    assert {r["id"] for r in result.disagreements} == expected
    assert all(r["pred_b"] == "3" for r in result.disagreements)
    n = len(ids)
    assert result.summary["agreement"] == pytest.approx((n - 5) / n)
    pred_a = logits.argmax(1)
    assert result.summary["accuracy_a"] == pytest.approx(float((pred_a == labels).float().mean()))
    with open(tmp_path / "out" / "predictions_test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == n and {r["id"] for r in rows if r["agree"] == "0"} == expected
    first = rows[0]
    assert first["id"] == ids[0] and first["true"] == str(int(labels[0]))
    assert math.isclose(float(first["conf_a"]), float(logits[0].softmax(0).max()), abs_tol=1e-3)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["disagreements"] == 5 and summary["mcnemar"]["method"] == "exact binomial"
    assert (tmp_path / "out" / "disagreements.png").stat().st_size > 5000
    with open(tmp_path / "out" / "disagreements_test.csv", newline="") as fh:  # the disagreements alone
        alone = list(csv.DictReader(fh))
    assert {r["id"] for r in alone} == expected and all(r["pred_b"] == "3" for r in alone)


def test_long_class_names_fit_under_a_thumbnail():
    from trainlab.analysis.contact_sheet import NAME_CHARS, _fit

    assert _fit("Egyptian cat") == "Egyptian cat"
    assert _fit("tabby, tabby cat") == "tabby"
    long = _fit("brass, memorial tablet, plaque")
    assert long == "brass" and len(_fit("a" * 40)) == NAME_CHARS and _fit("a" * 40).endswith("…")


def test_diff_of_a_checkpoint_with_itself_agrees_everywhere(run, tmp_path):
    result = diff_checkpoints(run.best_checkpoint, run.best_checkpoint, out=tmp_path)
    assert result.summary["agreement"] == 1.0 and result.summary["mcnemar"]["p_value"] == 1.0
    assert "contact_sheet" not in result.files


def test_meter_predictions_are_public_and_in_loader_order():
    from trainlab.tasks.classification import ClassificationMeter

    meter = ClassificationMeter(3, keep_predictions=True)
    assert meter.predictions()["probs"].shape == (0, 3)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    meter.update({"outputs": logits, "loss": torch.tensor(0.5)},
                 {"targets": torch.tensor([0, 1]), "index": torch.tensor([5, 2])})
    p = meter.predictions()
    assert p["index"].tolist() == [5, 2] and p["target"].tolist() == [0, 1] and p["pred"].tolist() == [0, 2]
    assert torch.allclose(p["probs"], logits.softmax(1))
    with pytest.raises(ValueError, match="keep_predictions=True"):
        ClassificationMeter(3).predictions()


def test_the_contact_sheet_of_clips_shows_first_and_last_frames(tmp_path):
    """A video diff's sheet (it failed on [T, C, H, W] clips before)."""
    from trainlab.analysis.contact_sheet import contact_sheet
    from trainlab.data.video import ClipSet

    clips = ClipSet(torch.randint(0, 255, (2, 5, 1, 16, 16), dtype=torch.uint8), torch.tensor([5, 3]),
                    torch.tensor([0, 1]), 4, ["a.avi", "b.avi"])
    rows = [{"id": "a.avi", "position": 0, "true": "up", "pred_a": "up", "conf_a": 0.9, "pred_b": "down",
             "conf_b": 0.6, "correct_a": True, "correct_b": False}]
    out = contact_sheet(rows, clips, tmp_path / "sheet.png", 1)
    assert out.stat().st_size > 1000
