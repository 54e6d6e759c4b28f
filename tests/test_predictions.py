"""Per-sample results: predictions.csv of a run agrees with its eval_test.json; trainlab eval writes one."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_recipe


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import trainlab

    root = tmp_path_factory.mktemp("pred")
    return trainlab.train(tiny_recipe(root / "run", train={"epochs": 1}))


def _confusion(rows, c):
    cm = [[0] * c for _ in range(c)]
    for r in rows:
        cm[r["target"]][r["pred"]] += 1
    return cm


def test_predictions_csv_agrees_with_eval_test_json(run):
    from trainlab.predictions import COLUMNS, read_csv

    ev = json.loads((run.dir / "eval_test.json").read_text())
    text = (run.dir / "predictions.csv").read_text()
    assert text.splitlines()[0].split(",") == COLUMNS
    rows = read_csv(run.dir / "predictions.csv")
    assert len(rows) == ev["samples"]
    assert sum(r["correct"] for r in rows) / len(rows) == pytest.approx(ev["acc1"], abs=1e-12)
    assert _confusion(rows, len(ev["per_class"])) == ev["confusion_matrix"]
    assert sum(r["loss"] for r in rows) / len(rows) == pytest.approx(ev["loss"], rel=1e-4)
    ids = [r["sample_id"] for r in rows]
    assert len(set(ids)) == len(ids) and ids[0].startswith("mnist5k")
    for r in rows:
        top = [int(t.split(":")[0]) for t in r["topk"].split()]
        assert top[0] == r["pred"] and r["prob_pred"] >= r["prob_target"] - 1e-9
    gallery = json.loads((run.dir / "thumbnails" / "gallery.json").read_text())
    shown = {i for k in ("top_losses", "least_confident", "pairs") for i in gallery[k]}
    assert shown and all((run.dir / "thumbnails" / f"test_{i}.png").is_file() for i in shown)
    wrong = [r for r in rows if not r["correct"]]
    if wrong:  # the first top loss is the mistake with the highest loss
        assert gallery["top_losses"][0] == max(wrong, key=lambda r: r["loss"])["index"]


def test_eval_writes_predictions_csv(run, tmp_path, capsys):
    from trainlab.cli import main
    from trainlab.predictions import read_csv

    out = tmp_path / "e.json"
    assert main(["eval", str(run.best_checkpoint), "--out", str(out)]) == 0
    assert "per-sample results written to" in capsys.readouterr().out
    rows = read_csv(tmp_path / "predictions.csv")
    ev = json.loads(out.read_text())
    assert _confusion(rows, len(ev["per_class"])) == ev["confusion_matrix"]
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in read_csv(run.dir / "predictions.csv")]
    assert main(["eval", str(run.best_checkpoint), "--out", str(tmp_path / "f.json"),
                 "--predictions", str(tmp_path / "predictions.csv")]) == 2
    assert "predictions.csv: the file exists" in capsys.readouterr().err


def test_report_shows_error_analysis_from_the_run_directory(run, tmp_path):
    from trainlab.analysis.report import write_report

    html, md = write_report([run.dir], tmp_path / "r.html")
    text = html.read_text()
    for heading in ("Error analysis", "Most confident mistakes", "Least confident correct", "Calibration",
                    "Accuracy per class", "Expected calibration error"):
        assert heading in text
    assert 'class="gallery"' in text and "mnist5k:" in text
    assert html.stat().st_size < 1_500_000


def test_top_label_ece_equals_torchmetrics_multiclass_calibration_error():
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    from trainlab.analysis.error_plots import calibration

    g = torch.Generator().manual_seed(0)
    probs = (torch.randn(300, 4, generator=g) * 2).softmax(1)
    target = torch.randint(0, 4, (300,), generator=g)
    conf, pred = probs.max(1)
    rows = [{"prob_pred": float(c), "correct": int(p == t)} for c, p, t in zip(conf, pred, target)]
    ece, bins = calibration(rows, 15)
    assert ece == pytest.approx(float(multiclass_calibration_error(probs, target, 4, n_bins=15)), abs=1e-5)
    assert sum(b["count"] for b in bins) == 300


def test_explain_cli_top_losses_files_and_the_report_gallery(run, tmp_path, capsys):
    from PIL import Image

    from trainlab.analysis.report import write_report
    from trainlab.cli import main

    assert main(["explain", str(run.best_checkpoint), "--top-losses", "3"]) == 0
    index = json.loads((run.dir / "explain" / "index.json").read_text())
    assert len(index["items"]) == 3 and (run.dir / "explain" / "index.html").is_file()
    assert all((run.dir / "explain" / e["file"]).is_file() for e in index["items"])
    html, _ = write_report([run.dir], tmp_path / "r.html")
    assert "Where the network looks" in html.read_text()
    folder = tmp_path / "imgs" / "7"  # a class-named folder gives the file its target
    folder.mkdir(parents=True)
    Image.new("L", (28, 28), 40).save(folder / "a.png")
    assert main(["explain", str(run.best_checkpoint), str(folder / "a.png"), "--out", str(tmp_path / "o")]) == 0
    item = json.loads((tmp_path / "o" / "index.json").read_text())["items"][0]
    assert item["target_name"] == "7" and item["sample_id"].endswith("a.png")
    assert main(["explain", str(run.best_checkpoint), "--split", "test", "--out", str(tmp_path / "o")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["explain", str(run.best_checkpoint)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    # data.* overrides choose the split's data (data.root=PATH when it moved), anywhere on the line
    assert main(["explain", str(run.best_checkpoint), "--split", "test", "data.max_samples=4",
                 "--out", str(tmp_path / "o4")]) == 0
    assert len(json.loads((tmp_path / "o4" / "index.json").read_text())["items"]) == 4
    assert main(["explain", str(run.best_checkpoint), str(folder / "a.png"), "data.max_samples=4",
                 "--out", str(tmp_path / "o5")]) == 2
    assert "data.max_samples=4: data.* overrides choose the data of --split" in capsys.readouterr().err


def test_a_comparison_folds_the_error_analysis_without_galleries(run, tmp_path):
    from trainlab.analysis.report import write_report

    both, _ = write_report([run.dir, run.dir], tmp_path / "two.html")
    text = both.read_text()
    assert "Expected calibration error" in text and 'class="gallery"' not in text  # no thumbnails


def test_explain_class_of_true_and_second_draws_those_classes_maps_and_the_report_says_so(run, tmp_path, capsys):
    from PIL import Image

    from trainlab.analysis.report import write_report
    from trainlab.cli import main

    ckpt = str(run.best_checkpoint)
    for which in ("true", "second"):
        out = tmp_path / which
        assert main(["explain", ckpt, "--split", "test", "--limit", "6", "--class-of", which, "--out", str(out)]) == 0
        index = json.loads((out / "index.json").read_text())
        assert index["class_of"] == which and len(index["items"]) == 6
        if which == "true":
            assert [e["explained"] for e in index["items"]] == [e["target_name"] for e in index["items"]]
        else:
            assert all(e["explained"] != e["pred_name"] for e in index["items"])
            assert "of the runner-up class over it" in (out / "index.html").read_text()
    # the report names whose maps its gallery shows
    assert main(["explain", ckpt, "--top-losses", "3", "--class-of", "true", "--force"]) == 0
    assert "the class maps of the true class over the top losses" in write_report([run.dir], tmp_path / "r.html")[0].read_text()
    png = tmp_path / "nolabel.png"  # a file outside a class-named folder has no true class
    Image.new("L", (28, 28), 40).save(png)
    assert main(["explain", ckpt, str(png), "--class-of", "true", "--out", str(tmp_path / "x")]) == 2
    assert "1 input(s) have no true class, e.g." in capsys.readouterr().err


def test_the_runner_up_is_each_inputs_second_most_probable_class():
    import torch

    from trainlab.inference.explain_run import classes_to_explain

    logits = torch.tensor([[0.1, 3.0, 2.0], [5.0, -1.0, 4.0], [0.0, 1.0, 2.0]])
    x = torch.arange(3.0).view(3, 1)
    got = classes_to_explain(lambda v: logits[v[:, 0].long()], x, "second", [None] * 3, ["a", "b", "c"], batch_size=2)
    assert got.tolist() == [2, 2, 1]
    assert classes_to_explain(None, x, "pred", [None] * 3, ["a", "b", "c"]) is None
    assert classes_to_explain(None, x, "true", [0, 2, 1], ["a", "b", "c"]).tolist() == [0, 2, 1]
