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


# Overrides anywhere on the line: argparse alone stops at `error: unrecognized arguments` for
# a key=value after an option, which is how the README's own sweep example failed.
@pytest.mark.parametrize("argv, overrides", [
    (["train", "r.yaml", "optim.lr=1", "train.epochs=2"], ["optim.lr=1", "train.epochs=2"]),
    (["-v", "train", "r.yaml", "optim.lr=1"], ["optim.lr=1"]),
    (["eval", "best.pt", "--split", "valid", "data.root=/d", "--json", "data.max_samples=8"],
     ["data.root=/d", "data.max_samples=8"]),
    (["sweep", "recipes/mnist.yaml", "--grid", "optim.name=adam,sgd", "--seeds", "3", "--parallel", "2",
      "train.epochs=5"], ["train.epochs=5"]),
    (["speedrun", "mnist", "--runs", "1", "data.root=/d"], ["data.root=/d"]),
    (["bench", "devices", "r.yaml", "--steps", "3", "data.batch_size=64"], ["data.batch_size=64"]),
    (["diff", "a.pt", "b.pt", "--split", "valid", "data.root=/d"], ["data.root=/d"]),
    (["config", "r.yaml", "optim.lr=0.1", "train.epochs=2"], ["optim.lr=0.1", "train.epochs=2"]),
])
def test_overrides_are_taken_after_options(argv, overrides):
    from trainlab.cli import parse_args

    assert parse_args(argv).overrides == overrides


def test_option_values_that_look_like_overrides_stay_with_their_option():
    from trainlab.cli import parse_args

    a = parse_args(["sweep", "r.yaml", "--grid", "optim.lr=0.1,0.2", "schedule.name=step,cosine", "--seeds", "2",
                    "train.epochs=3"])
    assert a.grid == ["optim.lr=0.1,0.2", "schedule.name=step,cosine"] and a.overrides == ["train.epochs=3"]
    a = parse_args(["sweep", "r.yaml", "--search", "optuna", "--space", "optim.lr=loguniform(1e-4,1e-1)",
                    "--trials", "4", "train.epochs=2"])
    assert a.space == ["optim.lr=loguniform(1e-4,1e-1)"] and a.overrides == ["train.epochs=2"]


def test_what_is_neither_an_option_nor_an_override_is_still_an_error(capsys):
    from trainlab.cli import parse_args

    for argv in (["train", "r.yaml", "--epochs", "3"], ["train", "r.yaml", "--seeds", "2", "stray"],
                 ["predict", "best.pt", "x.png", "data.root=/d"]):  # predict takes no overrides
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert "unrecognized arguments" in capsys.readouterr().err


def test_readme_sweep_example_resolves_its_trailing_override():
    from trainlab import sweep
    from trainlab.cli import parse_args

    a = parse_args(["sweep", str(REPO / "recipes" / "mnist.yaml"), "--grid", "optim.name=adam,sgd", "--seeds", "3",
                    "--parallel", "2", "train.epochs=5"])
    sw = sweep.from_args(a.target, a.grid, a.overrides, a.seeds, a.out)
    runs = sw.runs()
    assert len(runs) == 6 and all(r.overrides["train.epochs"] == 5 for r in runs)


def test_eval_override_after_an_option_reaches_the_data(trained, tmp_path):
    ckpt = str(trained / "run" / "checkpoints" / "best.pt")
    out_all, out_few = tmp_path / "all.json", tmp_path / "few.json"
    assert main(["eval", ckpt, "--out", str(out_all)]) == 0
    assert main(["eval", ckpt, "--out", str(out_few), "data.max_samples=128"]) == 0
    assert json.loads(out_few.read_text())["samples"] < json.loads(out_all.read_text())["samples"]


def test_a_closed_pipe_ends_listing_quietly():
    """`trainlab list keys | head -1`: no BrokenPipeError traceback when the reader stops early."""
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.argv = ['trainlab', 'list', 'keys']; "
                             "from trainlab.cli import main\nfor _ in range(200): main(['list', 'keys'])"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**__import__('os').environ,
                                                                                "PYTHONPATH": str(REPO / "src")})
    proc.stdout.readline()
    proc.stdout.close()  # like head -1
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_predict_of_only_unreadable_files_names_the_first_in_its_error(trained, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    out = tmp_path / "preds.csv"
    assert main(["predict", str(trained / "run" / "checkpoints" / "best.pt"), str(broken), "--out", str(out)]) == 2
    error = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(error) == 1 and "1 skipped; the first: " in error[0] and "broken.jpg" in error[0]
    assert not out.exists()
