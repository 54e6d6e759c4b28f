"""Lab files (recipes/labs/*.yaml): every lab reads and validates in both variants, bad lab files
are refused naming the key, a lab of named runs (one using another's checkpoint) runs, reports
and resumes, and (slow) every quick lab runs end to end on tiny data from the command line."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from trainlab.errors import ConfigError
from trainlab.sweep import lab

from conftest import REPO, SHARED, tiny_recipe

LABS = sorted((REPO / "recipes" / "labs").glob("*.yaml"))
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
# a lab's quick variant, shrunk further for a test (the docs test shrinks the same way)
TINY = ["data.max_samples=48", "data.max_tokens=3000", "train.epochs=1"]


def test_there_is_a_lab_file_for_each_course_lab():
    assert {p.stem for p in LABS} >= {"mnist-optimizers", "tiny-imagenet", "catsdogs", "video", "language-models"}


@pytest.mark.parametrize("path", LABS, ids=lambda p: p.stem)
def test_every_lab_file_validates_in_both_variants(path, monkeypatch):
    monkeypatch.chdir(REPO)  # recipes name their data relative to the checkout, as a user runs them
    full, info = lab.from_file(path)
    quick, qinfo = lab.from_file(path, quick=True)
    assert qinfo["minutes"] and qinfo["minutes"] <= 10, "the quick variant states its minutes on 2 cores"
    assert full.out != quick.out, "the two variants never share a folder"
    assert info["deliverables"].get("tensorboard") and info["question"]
    for sw in (full, quick):
        specs = sw.runs()  # every run's config validated, names distinct
        assert specs and all("run:" not in str(v) for s in specs for v in s.overrides.values())
    for name, role in info["roles"].items():
        assert role in ("compared", "helper"), name


def _write(tmp_path, data, name="lab.yaml"):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_recipe(tmp_path / "unused")))
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("data, message", [
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}, "grid": {"optim.lr": [1, 2]}}, "not both"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml", "overide": {}}}}, "unknown key(s) overide"),
    ({"lab": "x", "runs": {"a": {}}}, "needs 'recipe: PATH'"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml", "overrides": {"model.weights": "run:b"}}}}, "no run is named 'b'"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}, "quick": {"runs": {"b": {}}, "minutes": 1}}, "does not list"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}, "deliverables": {"diffs": []}}, "unknown deliverable(s) diffs"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}, "deliverables": {"columns": ["acc"]}}, "unknown column(s) acc"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}, "deliverables": {"diff": [["a", "z"]]}}, "run(s) z"),
    ({"lab": "x", "runs": {"a b": {"recipe": "tiny.yaml"}}}, "run name 'a b'"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml", "overrides": {"optim.lrr": 1}}}}, "optim.lrr"),
    ({"lab": "x", "runs": {"a": {"recipe": "tiny.yaml", "role": "helpr"}}}, "role 'helpr'"),
    ({"lab": "x", "runs": {"a": {"recipe": "missing.yaml"}}}, "missing.yaml"),
    ({"lab": "x", "recipe": "tiny.yaml", "grid": {"optim.lr": [1, 2]}, "search": {"trials": 3}}, "sweep file"),
    ({"lab": "x", "labs": 1, "runs": {"a": {"recipe": "tiny.yaml"}}}, "unknown lab key(s) labs"),
])
def test_a_bad_lab_file_is_refused_naming_what_is_wrong(tmp_path, data, message):
    with pytest.raises(ConfigError, match=None) as e:
        lab.from_file(_write(tmp_path, data), out=tmp_path / "o")[0].runs()
    assert message in str(e.value)


def test_a_recipe_given_as_a_lab_says_how_to_train_it():
    with pytest.raises(ConfigError, match="is a recipe, not a lab file.*trainlab train"):
        lab.from_file(REPO / "recipes" / "mnist.yaml")


def test_quick_is_refused_for_a_lab_without_a_quick_variant(tmp_path):
    with pytest.raises(ConfigError, match="no quick variant"):
        lab.from_file(_write(tmp_path, {"lab": "x", "runs": {"a": {"recipe": "tiny.yaml"}}}), quick=True)


def test_a_lab_of_named_runs_runs_reports_and_resumes(tmp_path, monkeypatch):
    """Two compared runs, one fine-tuned from a helper run's checkpoint, the comparison table, the
    deliverables, and a restart that trains nothing again; another lab in the folder is refused."""
    data = {"lab": "Tiny lab", "question": "Which is better?",
            "runs": {"base": {"recipe": "tiny.yaml", "role": "helper"},
                     "small": {"recipe": "tiny.yaml", "overrides": {"optim.lr": 1e-3}},
                     "tuned": {"recipe": "tiny.yaml", "overrides": {"model.weights": "run:base"}}},
            "overrides": {"train.epochs": 1},
            "quick": {"minutes": 1, "overrides": {"data.max_samples": 96}},
            "deliverables": {"diff": [["small", "tuned"]], "layers": ["tuned"], "tensorboard": True,
                             "predict": {"run": "best", "files": ["pics/digit.png"]}}}  # from where it runs
    from PIL import Image

    (tmp_path / "pics").mkdir()
    Image.new("L", (28, 28), 255).save(tmp_path / "pics" / "digit.png")
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, data)
    sw, info = lab.from_file(path, quick=True, out=tmp_path / "out")
    specs = {s.name: s for s in sw.runs()}
    assert specs["config=tuned"].after == ("config=base",)
    assert specs["config=tuned"].overrides["model.weights"].endswith("runs/config=base/checkpoints/best.pt")
    result = lab.run_lab(sw, info)
    assert [r["status"] for r in result["runs"]] == ["done"] * 3
    html = result["report"].read_text(encoding="utf-8")
    for text in ("Tiny lab", "Which is better?", "Answer", "Comparison", "Curves side by side",
                 "Not ranked (runs the others build on): base", "best.pt of base", "[95% CI]",
                 "samples they disagree on", "Per-layer output sizes: tuned", "A prediction with",
                 "TensorBoard", "weights file (MB)", "Paired test on the same test samples (McNemar)"):
        assert text in html, text
    assert (sw.out / "lab" / "diff_small_vs_tuned" / "disagreements_test.csv").is_file()
    assert "not made" not in html  # every deliverable was made
    preds = list((sw.out / "lab").glob("predict_*.csv"))  # with the run ranked first
    assert len(preds) == 1 and "digit.png" in preds[0].read_text()
    done = {n: (sw.out / "runs" / n / "done.json").stat().st_mtime_ns for n in specs}
    again = lab.run_lab(*lab.from_file(path, quick=True, out=tmp_path / "out"))
    assert [r["status"] for r in again["runs"]] == ["done"] * 3
    assert {n: (sw.out / "runs" / n / "done.json").stat().st_mtime_ns for n in specs} == done, "nothing re-ran"
    data["runs"]["small"]["overrides"]["optim.lr"] = 5e-3
    with pytest.raises(ConfigError, match="holds another sweep"):
        lab.run_lab(*lab.from_file(_write(tmp_path, data), quick=True, out=tmp_path / "out"))


def _run_lab(path, out, *extra):
    """From a scratch folder laid out like a checkout (recipes/, ../shared/data), so data a lab
    prepares (the moving-digits clips) lands there."""
    co = out.parent / "checkout"
    if not co.exists():
        co.mkdir()
        (co / "recipes").symlink_to(REPO / "recipes")
        (out.parent / "shared").symlink_to(SHARED.parent)
    return subprocess.run([sys.executable, "-m", "trainlab", "lab", str(path), "--quick", "--out", str(out), *TINY,
                           *extra], cwd=co, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(not (SHARED / "ptb").exists(), reason="shared PTB not found")
def test_the_language_model_lab_runs_from_the_command_line(tmp_path):
    r = _run_lab(REPO / "recipes" / "labs" / "language-models.yaml", tmp_path / "lm")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "report:" in r.stdout and "open it:" in r.stdout
    html = (tmp_path / "lm" / "report.html").read_text(encoding="utf-8")
    for text in ("best valid.ppl", "test ppl", "Generated text", "attention: 4 heads", "tokens/s"):
        assert text in html, text
    sample = (tmp_path / "lm" / "lab" / "generated_transformer.txt").read_bytes().decode("utf-8")
    assert sample.startswith("the company said") and len(sample.split()) > 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["catsdogs", "catsdogs-transfer", "catsdogs-pretrained", "mnist-optimizers", "tiny-imagenet",
                                  "video"])
def test_every_quick_lab_runs_end_to_end_on_tiny_data(tmp_path, name):
    r = _run_lab(REPO / "recipes" / "labs" / f"{name}.yaml", tmp_path / name)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (tmp_path / name / "report.html").read_text(encoding="utf-8")
    assert "Comparison" in html and "Curves side by side" in html and "not made" not in html
    rows = [json.loads(p.read_text())["status"] for p in (tmp_path / name / "runs").glob("*/done.json")]
    assert rows and set(rows) == {"done"}


def test_runs_compared_side_by_side_are_named_by_what_differs_not_by_timestamp(tmp_path):
    from trainlab.analysis.compare import labels_by_difference
    from trainlab.analysis.rundata import RunData

    def run(name, **cfg):
        config = {"run": {"name": name, "dir": str(tmp_path / "20261201-120000")}, **cfg}
        return RunData(tmp_path, "20261201-120000", config, {}, "", [], None, None)

    a = run("mnist", optim={"name": "adam", "lr": 1e-3}, train={"seed": 0})
    b = run("mnist", optim={"name": "sgd", "lr": 1e-2}, train={"seed": 0})
    c = run("catsdogs-vit", optim={"name": "adamw"})
    assert labels_by_difference([a, b]) == ["lr=0.001, optim.name=adam", "lr=0.01, optim.name=sgd"]
    assert labels_by_difference([a, b, c]) == ["mnist: lr=0.001, optim.name=adam", "mnist: lr=0.01, optim.name=sgd",
                                               "catsdogs-vit"]
    assert labels_by_difference([a, a]) is None  # the same config twice: the folders tell them apart


def test_the_wilson_interval_of_a_test_accuracy():
    from trainlab.analysis.stats import wilson

    lo, hi = wilson(140, 200)  # 70% of the 200 cats-vs-dogs test images: about +-6 points
    assert lo == pytest.approx(0.6332, abs=1e-3) and hi == pytest.approx(0.7592, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and 0.0 < wilson(0, 10)[1] < 0.35  # never below 0, unlike p +- z*se
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] > 0.65


def test_the_trainable_count_of_a_run_that_unfreezes_later_says_so(tmp_path):
    from trainlab.analysis.lab_table import _trainable
    from trainlab.analysis.rundata import RunData

    def run(**model):
        return RunData(tmp_path, "20261201-120000", {"model": model}, {}, "", [], None, None)

    assert _trainable(256, run(freeze="none")) == 256
    assert _trainable(256, run(freeze="backbone", unfreeze_epoch=3)) == "256; all after epoch 3"
    assert "every 2 epochs after epoch 1" in _trainable(1000, run(freeze="backbone", unfreeze_epoch=1,
                                                                  unfreeze_every=2))
