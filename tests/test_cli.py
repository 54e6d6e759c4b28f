import csv
import json
import subprocess
import sys

import pytest
import yaml

from trainlab.cli import main

from conftest import REPO, tiny_recipe


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(root / "run")))
    assert main(["train", str(recipe), "train.epochs=2", "optim.lr=3e-3"]) == 0
    return root


def test_train_writes_resolved_config_and_command(trained):
    cfg = yaml.safe_load((trained / "run" / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 3e-3 and cfg["train"]["epochs"] == 2
    assert "optim.lr=3e-3" in (trained / "run" / "command.txt").read_text()


def test_eval_prints_the_same_test_accuracy_as_training(trained, capsys):
    run = trained / "run"
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    out = trained / "eval.json"
    assert main(["eval", str(run / "checkpoints" / "best.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["acc1"] == pytest.approx(final["acc1"])
    assert f"acc1 {final['acc1']:.4f}" in printed
    assert len(result["per_class"]) == 10 and "recall" in result["per_class"][0]
    assert sum(map(sum, result["confusion_matrix"])) == result["samples"]


def test_predict_writes_csv_keyed_by_path(trained, tmp_path, capsys):
    from PIL import Image

    from trainlab.config import DataConfig
    from trainlab.data.embedded import mnist5k

    digits = mnist5k(DataConfig()).train
    paths = []
    for i in (0, 600, 1200):
        p = tmp_path / f"digit_{i}.png"
        Image.fromarray(digits.images[i, 0].numpy()).save(p)
        paths.append(p)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(trained / "run" / "checkpoints" / "best.pt"), str(tmp_path), "--topk", "3",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["path"] for r in rows) == sorted(map(str, paths))
    assert {"prediction", "probability", "top2", "top3_probability"} <= set(rows[0])
    assert all(r["prediction"] in [str(d) for d in range(10)] for r in rows)
    assert "broken.png" in capsys.readouterr().err  # named in the warning, not a crash


def test_summary_of_a_model_name_and_a_checkpoint(trained, capsys):
    assert main(["summary", "lenet5", "--input", "1x32x32"]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and "[1, 6, 28, 28]" in out and "[1, 10]" in out
    assert main(["summary", str(trained / "run" / "checkpoints" / "best.pt")]) == 0
    assert "[1, 8, 28, 28]" in capsys.readouterr().out


def test_config_prints_resolved_recipe(capsys):
    assert main(["config", str(REPO / "recipes" / "mnist.yaml"), "optim.lr=0.01"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.01 and cfg["run"]["name"] == "mnist"


def test_bad_override_fails_before_anything_runs(tmp_path, capsys):
    assert main(["train", str(REPO / "recipes" / "demo.yaml"), "optim.lrr=1", f"run.dir={tmp_path / 'x'}"]) == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cuda_on_a_cpu_only_machine_is_an_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = main(["train", str(REPO / "recipes" / "demo.yaml"), "train.device=cuda", f"run.dir={tmp_path / 'x'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.device=cuda" in err and ("CPU-only" in err or "sees no GPU" in err)


def test_list_shows_registered_names(capsys):
    assert main(["list", "models"]) == 0
    assert {"mlp", "lenet5", "convnet"} <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}


def test_console_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "trainlab", "list", "optimizers"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "nadam" in out.stdout
