"""``trainlab report RUN_DIR [RUN_DIR ...]``: one self-contained HTML file and a Markdown twin.

A report reads only the run directories: config.yaml, env.json, command.txt, metrics.jsonl,
eval_test.json and the checkpoint (for the model summary). One run gets its full story;
several runs get a ranking, McNemar's test between runs tested on the same samples (read from
their predictions.csv), overlaid curves, and each run's details folded below.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from . import plots
from ._doc import Doc
from .compare import labels_by_difference, ranking
from .dynamics_section import dynamics_section
from .embedding_section import embedding_section
from .error_analysis import error_analysis
from .lm_section import lm_analysis
from .paired_tests import mcnemar_section
from .rundata import OVERFIT_RULE, RunData, run_labels

LOG = logging.getLogger("trainlab")


def write_report(run_dirs: list, out: str | Path | None = None, title: str | None = None,
                 preface: list = (), sections=None, labels: list | None = None) -> tuple[Path, Path]:
    """``preface``: (heading, note, headers, rows) tables shown before a comparison (a sweep's cells).
    ``sections(doc, runs, models)``: a lab's own sections, in place of the ranking and overlaid curves
    (each run's details still follow). ``labels``: the runs' names (default: their folders)."""
    paths = [Path(p) for p in run_dirs]
    given = labels
    labels = labels or run_labels(paths)
    runs = [RunData.load(p, label) for p, label in zip(paths, labels)]
    if given is None and len(runs) > 1:  # named by what differs, not by their timestamped folders
        for r, name in zip(runs, labels_by_difference(runs) or labels):
            r.label = name
    if out is None:
        out = paths[0] / "report.html" if len(runs) == 1 else Path("report.html")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out.with_suffix(".html")
    models = {r.label: _model_summary(r) for r in runs}
    if len(runs) == 1:
        doc = Doc(f"trainlab report: {runs[0].label}")
        _run_sections(doc, runs[0], models[runs[0].label], level=2)
    else:
        doc = Doc(title or f"trainlab report: {len(runs)} runs compared")
        for heading, note, headers, rows in preface:
            doc.heading(heading, 2)
            doc.para(note, note=True)
            doc.table(headers, rows)
        if sections is not None:
            sections(doc, runs, models)
            run_details(doc, runs, models)
        else:
            _comparison(doc, runs, models)
    return doc.write(out)


# ---------------------------------------------------------------------- model summary
def _model_summary(run: RunData):
    """(Summary, file sizes) from the run's checkpoint, or (None, reason)."""
    ckpt = run.checkpoint()
    if ckpt is None:
        return None, f"no checkpoint in {run.path / 'checkpoints'}"
    try:
        from ..api import load
        from .summary import summarize_model

        model = load(ckpt)
        shape = model.trainlab_meta.get("input_shape")
        dtype = model.trainlab_meta.get("input_dtype", "float")
        summary = summarize_model(model, shape, dtype)
    except Exception as e:  # noqa: BLE001 - a report should still show the curves
        LOG.warning("model summary of %s unavailable: %s", ckpt, e)
        return None, f"model summary unavailable ({type(e).__name__}: {e})"
    files = {p.name: os.path.getsize(p) for p in sorted((run.path / "checkpoints").glob("*.pt"))}
    return summary, files


# ---------------------------------------------------------------------- one run
def _run_sections(doc: Doc, run: RunData, model, level: int) -> None:
    h = level
    doc.para(f"Run directory: {run.path.resolve()}")
    if run.command:
        doc.pre(run.command)
    doc.heading("Final metrics", h)
    _final_table(doc, run)
    doc.heading("Curves", h)
    over = run.overfitting()
    doc.para(f"Best epoch (on {run.monitor}): {run.best_epoch}. " + (
        f"Overfitting: validation loss rises after epoch {over[0]} while training loss falls ({over[2]} epochs "
        f"above its minimum, ending {over[1]:.0%} higher)." if over else "No overfitting onset.")
        + f" ({OVERFIT_RULE}.)", note=True)
    for metric in run.metrics:
        doc.image(f"{run.label}_{metric}.png", plots.curve_figure([run], metric), f"{metric} per epoch",
                  half=True)
    if run.series("train", "lr")[0]:
        doc.image(f"{run.label}_lr.png", plots.lr_figure([run]), "learning rate per epoch", half=True)
    if run.eval_test and run.eval_test.get("per_class"):
        doc.heading("Per-class results (test split, best checkpoint)", h)
        _per_class(doc, run)
    error_analysis(doc, run, h, compact=level > 2)  # in a comparison: no galleries
    if level <= 2:  # a run folded into a comparison: no map
        embedding_section(doc, run, h)
    lm_analysis(doc, run, h, compact=level > 2)
    dynamics_section(doc, run, h)
    doc.heading("Time per epoch and throughput", h)
    _timing(doc, run)
    doc.heading("Model", h)
    _model_section(doc, run, model)
    doc.heading("Configuration (resolved)", h)
    doc.pre(yaml.safe_dump(run.config, sort_keys=False).rstrip() if run.config else "(no config.yaml)")
    doc.heading("Environment", h)
    doc.table(["key", "value"], [[k, v] for k, v in run.env.items()] or [["env.json", "missing"]])


def _final_table(doc: Doc, run: RunData) -> None:
    metrics = run.metrics
    rows = []
    best = run.best_epoch
    for split in ("train", "valid"):
        rec = next((r for r in run.records if r["split"] == split and r["epoch"] == best), None)
        if rec:
            rows.append([f"{split} at best epoch {best}", *[_fmt(m, rec.get(m)) for m in metrics], rec.get(run.unit)])
    last = run.epochs
    if last != best:
        rec = next((r for r in run.records if r["split"] == "valid" and r["epoch"] == last), None)
        if rec:
            rows.append([f"valid at last epoch {last}", *[_fmt(m, rec.get(m)) for m in metrics], rec.get(run.unit)])
    if run.final:
        named = f" = {run.final['split_name']}" if run.final.get("split_name") else ""
        n = run.final.get(run.unit) if run.unit == "samples" else None
        rows.append([f"test{named}, {run.final.get('weights') or 'best checkpoint'} ({run.final.get('checkpoint')})",
                     *[_with_interval(m, run.final.get(m), n) for m in metrics], run.final.get(run.unit)])
    headers = ["evaluation", *[f"{m} (%)" if plots.percent(m) else m for m in metrics], run.unit]
    doc.table(headers, rows)
    if run.final and any(plots.percent(m) for m in metrics):
        doc.para("Test accuracies carry their 95% Wilson interval over the test samples in brackets: how far "
                 "the figure could move on another test set of the same size.", note=True)


def _with_interval(metric: str, v, n):
    """A test accuracy with its 95% Wilson interval over the n test samples: '95.50 [94.0, 96.6]'."""
    if v is None or not n or not plots.percent(metric):
        return _fmt(metric, v)
    from .stats import wilson

    lo, hi = wilson(round(v * n), int(n))
    return f"{v * 100:.2f} [{lo * 100:.1f}, {hi * 100:.1f}]"


def _fmt(metric: str, v):
    if v is None:
        return None
    return round(v * 100, 2) if plots.percent(metric) else v


def _per_class(doc: Doc, run: RunData) -> None:
    ev = run.eval_test
    rows = [[r["class"], round(r["precision"] * 100, 2), round(r["recall"] * 100, 2), round(r["f1"] * 100, 2),
             r["support"]] for r in ev["per_class"]]
    if ev.get("macro"):
        m = ev["macro"]
        rows.append(["macro average", round(m["precision"] * 100, 2), round(m["recall"] * 100, 2),
                     round(m["f1"] * 100, 2), sum(r["support"] for r in ev["per_class"])])
    many = len(rows) > 31  # Tiny-ImageNet's 200 rows would bury the rest of the report
    if many:
        doc.open_details(f"{len(ev['per_class'])} classes: precision, recall and F1 per class")
    doc.table(["class", "precision (%)", "recall (%)", "F1 (%)", "support"], rows)
    if many:
        doc.close_details()
    if ev.get("confusion_matrix"):
        names = [r["class"] for r in ev["per_class"]]
        doc.image(f"{run.label}_confusion.png", plots.confusion_figure(ev["confusion_matrix"], names),
                  "confusion matrix")
        pairs = _top_confusions(ev["confusion_matrix"], names)
        if pairs:
            doc.para("The most frequent confusions:", note=True)
            doc.table(["true class", "predicted as", "count", "% of the true class"], pairs)


def _top_confusions(cm: list[list[int]], names: list[str], k: int = 10) -> list[list]:
    cells = [(cm[i][j], i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i][j]]
    cells.sort(reverse=True)
    return [[names[i], names[j], c, f"{100 * c / max(sum(cm[i]), 1):.2f}%"] for c, i, j in cells[:k]]


def _timing(doc: Doc, run: RunData) -> None:
    rows, u = [], run.unit
    for e in sorted({r["epoch"] for r in run.records}):
        tr = next((r for r in run.records if r["epoch"] == e and r["split"] == "train"), {})
        va = next((r for r in run.records if r["epoch"] == e and r["split"] == "valid"), {})
        rows.append([e, tr.get("seconds"), tr.get(f"{u}_per_s"), va.get("seconds"), va.get(f"{u}_per_s")])
    doc.table(["epoch", "train time (s)", f"train {u}/s", "valid time (s)", f"valid {u}/s"], rows)
    wall = run.wall_seconds()
    doc.para(f"Training time {run.train_seconds():,.1f} s over {run.epochs} epoch(s)"
             + (f"; wall clock from first to last evaluation about {wall:,.0f} s." if wall else "."), note=True)
    doc.image(f"{run.label}_timing.png", plots.timing_figure([run]), f"time per epoch and {u} per second")


def _model_section(doc: Doc, run: RunData, model) -> None:
    summary, files = model
    if summary is None:
        doc.para(files, note=True)
        return
    doc.pre(summary.text(depth=3))
    if files:
        doc.table(["file in checkpoints/", "size (MB)", "bytes"], [[k, round(v / 1e6, 2), v] for k, v in files.items()])
    from .diagram import draw_png

    doc.image(f"{run.label}_model.png", draw_png(summary.anatomy), "architecture block diagram")


# ---------------------------------------------------------------------- several runs
def _comparison(doc: Doc, runs: list[RunData], models: dict) -> None:
    params = {label: (m[0].anatomy.total_params if m[0] is not None else None) for label, m in models.items()}
    headers, rows, why = ranking(runs, params)
    doc.heading("Ranking", 2)
    doc.para(why, note=True)
    doc.table(headers, rows)
    by_label = {r.label: r for r in runs}
    mcnemar_section(doc, [by_label[row[1]] for row in rows])  # best first: the ranking's order
    doc.heading("Curves (overlaid)", 2)
    metrics = []
    for r in runs:
        metrics += [m for m in r.metrics if m not in metrics]
    for metric in metrics:
        doc.image(f"compare_{metric}.png", plots.curve_figure(runs, metric), f"{metric} per epoch, all runs",
                  half=True)
    if any(r.series("train", "lr")[0] for r in runs):
        doc.image("compare_lr.png", plots.lr_figure(runs), "learning rate per epoch, all runs", half=True)
    doc.heading("Time per epoch and throughput", 2)
    doc.image("compare_timing.png", plots.timing_figure(runs), "time per epoch and samples per second, all runs")
    run_details(doc, runs, models)


def run_details(doc: Doc, runs: list[RunData], models: dict) -> None:
    doc.heading("Runs in detail", 2)
    for r in runs:
        doc.open_details(f"{r.label}")
        doc.heading(r.label, 3)
        _run_sections(doc, r, models[r.label], level=4)
        doc.close_details()
