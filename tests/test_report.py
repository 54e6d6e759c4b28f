"""Run reports: every section and image of one run and of a comparison (McNemar between runs tested
on the same samples); metrics discovered."""

import base64
import csv
import io
import json
import shutil
from html.parser import HTMLParser

import pytest
import torch
import yaml
from PIL import Image

import trainlab
from trainlab.analysis._doc import Doc
from trainlab.analysis.diff import diff_checkpoints
from trainlab.analysis.paired_tests import mcnemar_section, paired_tests, verdict
from trainlab.analysis.report import write_report
from trainlab.analysis.rundata import RunData
from trainlab.cli import main
from trainlab.errors import DataError

from conftest import tiny_recipe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    a = trainlab.train(tiny_recipe(root / "adam", train={"epochs": 2})).dir
    b = trainlab.train(tiny_recipe(root / "sgd", train={"epochs": 2}, optim={"name": "sgd", "lr": 0.05})).dir
    return root, a, b


class Page(HTMLParser):
    """Headings, images and table headers of a page (text inside <wbr> etc. joined)."""

    def __init__(self):
        super().__init__()
        self.headings, self.images, self.th = [], [], []
        self._open, self._text = None, []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in ("h1", "h2", "h3", "h4", "th"):
            self._open, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._open:
            (self.th if tag == "th" else self.headings).append("".join(self._text).strip())
            self._open = None

    def handle_data(self, data):
        if self._open:
            self._text.append(data)


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check_images(page: Page) -> None:
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,"), "images must be embedded"
        im = Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1])))
        if img.get("class") == "thumb":  # the error analysis' galleries: bounded thumbnails
            assert max(im.size) <= 8 * 96 and min(im.size) <= 96 and img["alt"]
            continue
        assert im.size[0] > 300 and im.size[1] > 150 and img["alt"]


SECTIONS = ["Final metrics", "Curves", "Per-class results (test split, best checkpoint)",
            "Time per epoch and throughput", "Model", "Configuration (resolved)", "Environment"]


def test_one_run_report_has_every_section_and_image(runs):
    _, a, _ = runs
    html, md = write_report([a])
    assert html == a / "report.html"
    page = parse(html)
    assert all(s in page.headings for s in SECTIONS), page.headings
    alts = [i["alt"] for i in page.images]
    for alt in ("loss per epoch", "acc1 per epoch", "acc5 per epoch", "learning rate per epoch",
                "confusion matrix", "time per epoch and samples per second", "architecture block diagram"):
        assert alt in alts
    check_images(page)
    assert {"precision (%)", "recall (%)", "F1 (%)", "support", "train samples/s"} <= set(page.th)
    text = html.read_text()
    assert "optim:" in text and "torch" in text and "weights-only file" in text
    markdown = md.read_text()
    assert all(f"## {s}" in markdown for s in SECTIONS)
    linked = [line.split("](", 1)[1].rstrip(")\n") for line in markdown.splitlines() if line.startswith("![")]
    assert len(linked) == len(page.images) and all((md.parent / p).is_file() for p in linked)


def test_comparison_ranks_runs_and_lists_differing_keys(runs, tmp_path):
    _, a, b = runs
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "cmp.html")]) == 0
    page = parse(tmp_path / "cmp.html")
    assert {"Ranking", "Curves (overlaid)", "Runs in detail"} <= set(page.headings)
    # each run is named by what differs (its folder could be a timestamp)
    named = [h for h in page.headings if "optim.name=" in h]
    assert len(named) == 2 and any("optim.name=adam" in h for h in named) and any("optim.name=sgd" in h for h in named)
    assert {"best valid.acc1 (%)", "test acc1 (%) (best checkpoint)", "parameters", "optim.lr",
            "optim.name"} <= set(page.th)
    assert "run.dir" not in page.th and "optim.betas" not in page.th
    alts = [i["alt"] for i in page.images]
    assert "loss per epoch, all runs" in alts and alts.count("confusion matrix") == 2
    check_images(page)


def fake_run(path, valid_loss, train_loss, metric="ppl"):
    """A run directory written by hand: a language-model-like run with perplexity, no checkpoint."""
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump({"train": {"monitor": f"valid.{metric}"}}))
    lines = []
    for e, (v, t) in enumerate(zip(valid_loss, train_loss), 1):
        lines.append({"epoch": e, "step": e * 10, "split": "train", "loss": t, metric: 2.718 ** t, "lr": 0.1,
                      "seconds": 1.0, "samples_per_s": 100.0})
        lines.append({"epoch": e, "step": e * 10, "split": "valid", "loss": v, metric: 2.718 ** v, "lr": 0.1})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_metrics_discovered_and_overfitting_onset_marked(tmp_path):
    run = fake_run(tmp_path / "lm", valid_loss=[5.0, 4.5, 4.2, 4.3, 4.6], train_loss=[5.2, 4.4, 3.9, 3.5, 3.1])
    data = RunData.load(run)
    assert data.metrics == ["loss", "ppl"]
    assert data.best_epoch == 3 and data.overfitting_epoch() == 3
    html, _ = write_report([run], tmp_path / "lm.html")
    page = parse(html)
    assert "ppl per epoch" in [i["alt"] for i in page.images]
    assert "validation loss rises after epoch 3" in html.read_text()
    assert "model summary unavailable" not in html.read_text() and "no checkpoint" in html.read_text()


def test_no_overfitting_when_valid_loss_keeps_falling(tmp_path):
    run = fake_run(tmp_path / "ok", valid_loss=[5.0, 4.5, 4.2, 4.1], train_loss=[5.2, 4.4, 3.9, 3.5])
    assert RunData.load(run).overfitting_epoch() is None


def test_a_folder_without_metrics_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no metrics.jsonl"):
        RunData.load(tmp_path / "empty")
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_a_language_model_run_is_reported_in_tokens(tiny_lm, tmp_path):
    """Used to crash in the timing figure: a language model counts tokens, not samples."""
    write_report([tiny_lm.dir], tmp_path / "lm.html")
    html = (tmp_path / "lm.html").read_text(encoding="utf-8")
    assert "train tokens/s" in html and "ppl" in html
    run = RunData.load(tiny_lm.dir)
    assert run.unit == "tokens" and "tokens_per_s" not in run.metrics and "tokens" not in run.metrics
    # a run directory written before task.json existed: the unit comes from its records
    (tiny_lm.dir / "task.json").rename(tmp_path / "task.json.bak")
    try:
        assert RunData.load(tiny_lm.dir).unit == "tokens"
        write_report([tiny_lm.dir], tmp_path / "old.html")
    finally:
        (tmp_path / "task.json.bak").rename(tiny_lm.dir / "task.json")


@pytest.mark.parametrize("valid, train, expected", [
    ([5.0, 4.5, 4.2, 4.3, 4.6], [5.2, 4.4, 3.9, 3.5, 3.1], 3),      # two epochs above the minimum, 9.5% up
    ([1.0, 0.5, 0.30, 0.31], [1.1, 0.6, 0.30, 0.28], None),          # one higher epoch: evaluation noise
    ([1.0, 0.5, 0.30, 0.302, 0.304], [1.1, 0.6, 0.30, 0.28, 0.27], None),  # lasting, but within 3%
    ([1.0, 0.5, 0.30, 0.40, 0.29], [1.1, 0.6, 0.30, 0.28, 0.27], None),    # a spike, then a new minimum
    ([1.0, 0.5, 0.30, 0.35, 0.40], [1.1, 0.6, 0.30, 0.31, 0.33], None),    # train loss rising too: not overfitting
])
def test_overfitting_is_flagged_only_beyond_noise(tmp_path, valid, train, expected):
    run = fake_run(tmp_path / "r", valid_loss=valid, train_loss=train)
    assert RunData.load(run).overfitting_epoch() == expected


def test_the_learning_rate_is_drawn_per_step_from_the_schedule(tmp_path):
    """Warmup and a decay to zero are visible: the schedule is recomputed from the run's config."""
    from trainlab.analysis.plots import lr_per_step

    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 3},
                                     schedule={"name": "cosine", "warmup_epochs": 1.0}))
    xs, ys = lr_per_step(RunData.load(run.dir))
    assert len(xs) == 3 * 8 + 1 and xs[-1] == 3.0  # 8 steps an epoch
    assert ys[0] < ys[8] == pytest.approx(2e-3) and ys[-1] == pytest.approx(0.0, abs=1e-9)
    logged = {r["step"]: r["lr"] for r in run.metrics if r["split"] == "train"}
    assert all(ys[s] == pytest.approx(lr) for s, lr in logged.items())  # the logged epoch ends agree
    plain = fake_run(tmp_path / "plateau", valid_loss=[1.0, 0.9, 0.8], train_loss=[1.1, 1.0, 0.9])
    assert lr_per_step(RunData.load(plain)) is None  # nothing to recompute: epoch ends are drawn


def test_top5_is_hidden_for_five_classes_or_fewer(tmp_path):
    import numpy as np

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 6, 6, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    train = torch.utils.data.TensorDataset(x[:150], y[:150])
    test = torch.utils.data.TensorDataset(x[150:], y[150:])
    run = trainlab.train(tiny_recipe(tmp_path / "run", train={"epochs": 1, "monitor": "train.loss"}),
                         model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)),
                         datasets={"train": train, "test": test}, class_names=["neg", "pos"])
    assert "acc5" not in RunData.load(run.dir).metrics and np.isfinite(run.test["acc1"])


@pytest.fixture(scope="module")
def three(runs):
    """McNemar in a comparison: adam and sgd on the same test split, a third split differently
    (data.split_seed=1); the counts agree with `trainlab diff`, which re-evaluates both checkpoints."""
    root, a, b = runs
    c = trainlab.train(tiny_recipe(root / "other_split", train={"epochs": 1}, data={"split_seed": 1})).dir
    return root, a, b, c


def _paired(*dirs):
    return [RunData.load(d, d.name) for d in dirs]


def test_same_samples_are_paired_and_agree_with_diff(three, tmp_path):
    root, a, b, c = three
    found = paired_tests(_paired(a, b, c))
    assert found["tested"] == 3 and len(found["pairs"]) == 1
    p = found["pairs"][0]
    assert (p["run_a"], p["run_b"]) == ("adam", "sgd")
    d = diff_checkpoints(a / "checkpoints" / "best.pt", b / "checkpoints" / "best.pt", out=tmp_path / "diff")
    m = d.summary["mcnemar"]
    assert (p["b"], p["c"], p["samples"]) == (m["b"], m["c"], d.summary["samples"])
    assert p["p_value"] == pytest.approx(m["p_value"]) and p["acc_a"] == pytest.approx(d.summary["accuracy_a"])
    (name, why), = found["apart"]
    assert name == "other_split" and why.startswith("its test set differs from adam's")


def test_the_comparison_report_shows_the_section(three, tmp_path):
    _, a, b, c = three
    html, md = write_report([a, b, c], tmp_path / "cmp.html")
    page = parse(html)
    heading = "Paired test on the same test samples (McNemar)"
    assert heading in page.headings
    assert page.headings.index("Ranking") < page.headings.index(heading) < page.headings.index("Curves (overlaid)")
    assert {"b: A right, B wrong", "c: A wrong, B right", "p", "verdict"} <= set(page.th)
    text = md.read_text()
    assert "Not comparable, so not tested:" in text and "its test set differs" in text


def test_other_labels_or_no_predictions_are_not_compared(three, tmp_path):
    _, a, b, _ = three
    relabelled, bare = tmp_path / "relabelled", tmp_path / "bare"
    shutil.copytree(b, relabelled)
    shutil.copytree(b, bare)
    (bare / "predictions.csv").unlink()
    path = relabelled / "predictions.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["target_name"] = "not a digit"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    found = paired_tests(_paired(a, relabelled, bare))
    assert found["pairs"] == []
    apart = dict(found["apart"])
    assert apart["relabelled"].endswith("but 1 of them carry other labels")
    assert apart["bare"].startswith("no predictions.csv")


def test_many_runs_best_against_each_and_identical_runs(three, tmp_path):
    _, a, _, _ = three
    copies = [a]
    for i in range(4):
        shutil.copytree(a, tmp_path / f"copy{i}")
        copies.append(tmp_path / f"copy{i}")
    found = paired_tests(_paired(*copies))
    assert [(p["run_a"], p["run_b"]) for p in found["pairs"]] == [("adam", f"copy{i}") for i in range(4)]
    assert all(verdict(p) == "identical right/wrong on every sample" for p in found["pairs"])


def test_one_run_with_predictions_adds_no_section(three):
    _, a, _, _ = three
    doc = Doc("x")
    assert mcnemar_section(doc, _paired(a)) is False  # one run with predictions: nothing to pair


@pytest.mark.parametrize("b, c, expected", [
    (3, 0, "too few disagreements (3) for any verdict at the 5% level"),
    (20, 2, "A is more accurate beyond chance"),
    (2, 20, "B is more accurate beyond chance"),
    (9, 6, "no difference beyond chance on these 100 samples"),
])
def test_verdict_in_words(b, c, expected):
    from trainlab.analysis.stats import mcnemar

    pair = {"run_a": "A", "run_b": "B", "samples": 100, **mcnemar(b, c)}
    assert verdict(pair) == expected
    if "beyond chance" in expected and "no difference" not in expected:
        assert verdict(pair, comparisons=10_000).endswith("(not below Bonferroni's 5e-06)")
