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
    from trainlab.engine.per_sample import COLUMNS, read_csv

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
    from trainlab.engine.per_sample import read_csv

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
