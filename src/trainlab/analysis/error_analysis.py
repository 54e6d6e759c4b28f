"""The error-analysis section of a classification run's report, read from the run directory alone.

predictions.csv (one row per test sample, written by the final test evaluation) gives the top
losses, the most confused pairs, the least confident correct predictions, calibration and
per-class accuracy; thumbnails/ holds the small images the galleries show (written at the same
time: the report needs neither the data nor a model), and explain/ the Grad-CAM overlays of
``trainlab explain RUN/checkpoints/best.pt --top-losses N`` when it was run.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..predictions import read_csv
from ._doc import Doc
from .contact_sheet import _fit
from .rundata import RunData

ECE_BINS = 15


def error_analysis(doc: Doc, run: RunData, level: int, compact: bool = False) -> bool:
    """Adds the section when the run has predictions.csv; False (nothing added) otherwise. ``compact`` (a
    run folded into a comparison): calibration and per-class accuracy only, no galleries, so a sweep's
    report stays small."""
    path = run.path / "predictions.csv"
    if not path.is_file():
        return False
    rows = read_csv(path)
    if not rows:
        return False
    thumbs = run.path / "thumbnails"
    gallery = _json(thumbs / "gallery.json")
    doc.heading("Error analysis (test split, best checkpoint)", level)
    wrong = sum(1 for r in rows if not r["correct"])
    doc.para(f"{len(rows):,} test samples, {wrong:,} mistakes; per-sample results in {path.resolve()} "
             + (f"(the galleries of top losses and confusions: trainlab report {run.path})." if compact else
                f"(thumbnails below are {thumbs.name}/, at most 64 pixels a side)."), note=True)
    if not compact:
        _galleries(doc, run, rows, gallery, thumbs, wrong, level)
    doc.heading("Calibration", level + 1)
    _calibration(doc, run, rows)
    doc.heading("Accuracy per class", level + 1)
    from .error_plots import per_class_figure

    doc.image(f"{run.label}_class_accuracy.png", per_class_figure(rows, _class_names(run, rows)),
              "test accuracy per class", half=len(_class_names(run, rows)) <= 20)
    return True


def _galleries(doc: Doc, run: RunData, rows: list[dict], gallery: dict, thumbs: Path, wrong: int,
               level: int) -> None:
    by_index = {r["index"]: r for r in rows}
    doc.heading("Most confident mistakes (top losses)", level + 1)
    _gallery(doc, "toploss", [by_index[i] for i in gallery.get("top_losses", []) if i in by_index], thumbs,
             "no mistakes on the test split" if not wrong else "no thumbnails in the run directory")
    _explained(doc, run, level + 1)
    doc.heading("Most confused pairs", level + 1)
    _pairs(doc, rows, [by_index[i] for i in gallery.get("pairs", []) if i in by_index], thumbs)
    doc.heading("Least confident correct predictions", level + 1)
    _gallery(doc, "unsure", [by_index[i] for i in gallery.get("least_confident", []) if i in by_index], thumbs,
             "no correct predictions" if wrong == len(rows) else "no thumbnails in the run directory")


def _json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _class_names(run: RunData, rows: list[dict]) -> list[str]:
    if run.eval_test and run.eval_test.get("per_class"):
        return [r["class"] for r in run.eval_test["per_class"]]
    n = max(max(r["target"], r["pred"]) for r in rows) + 1
    names = {r["target"]: r["target_name"] for r in rows} | {r["pred"]: r["pred_name"] for r in rows}
    return [names.get(i, str(i)) for i in range(n)]


def _caption(r: dict) -> list[tuple[str, str]]:
    """(text, style) lines under a thumbnail: file name, target, prediction with its probability."""
    sid = r["sample_id"].replace("\\", "/")
    name = sid.rsplit("/", 1)[-1]
    ok = "ok" if r["correct"] else "bad"
    return [(name if len(name) <= 22 else "…" + name[-21:], "id"), (f"true: {_fit(r['target_name'])}", ""),
            (f"pred: {_fit(r['pred_name'])} {r['prob_pred']:.2f}", ok),
            (f"p(true) {r['prob_target']:.3f}  loss {r['loss']:.2f}", "")]


def _gallery(doc: Doc, prefix: str, rows: list[dict], thumbs: Path, empty: str) -> None:
    items = []
    for r in rows:
        f = thumbs / f"test_{r['index']}.png"
        if f.is_file():
            items.append((f"{prefix}_{r['index']}.png", f.read_bytes(), _caption(r), r["sample_id"]))
    if not items:
        doc.para(empty + ".", note=True)
        return
    doc.gallery(items)


def _pairs(doc: Doc, rows: list[dict], examples: list[dict], thumbs: Path) -> None:
    counts: dict[tuple[str, str], int] = {}
    per_true: dict[str, int] = {}
    for r in rows:
        per_true[r["target_name"]] = per_true.get(r["target_name"], 0) + 1
        if not r["correct"]:
            key = (r["target_name"], r["pred_name"])
            counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
    if not top:
        doc.para("No mistakes on the test split.", note=True)
        return
    for (a, b), n in top:
        shown = [r for r in examples if (r["target_name"], r["pred_name"]) == (a, b)]
        doc.para(f"true {a}, predicted {b}: {n} times ({100 * n / per_true[a]:.2f}% of the {a} samples)"
                 + ("; the most confident of them:" if shown else ""), note=True)
        if shown:
            _gallery(doc, "pair", shown, thumbs, "no thumbnails")


def _calibration(doc: Doc, run: RunData, rows: list[dict]) -> None:
    from .error_plots import calibration

    ece, bins = calibration(rows, ECE_BINS)
    from .error_plots import reliability_figure

    doc.para(f"Expected calibration error (ECE, {ECE_BINS} equal-width bins of the top-1 probability, "
             f"torchmetrics): {ece * 100:.2f}% (0 = the predicted probabilities match the accuracies; accuracy bars "
             f"below the diagonal: over-confident, above it: under-confident).", note=True)
    doc.image(f"{run.label}_reliability.png", reliability_figure(bins, ece), "reliability diagram", half=True)


def _explained(doc: Doc, run: RunData, level: int) -> None:
    """The Grad-CAM overlays ``trainlab explain --top-losses N`` left in the run directory, if any."""
    index = _json(run.path / "explain" / "index.json")
    items = []
    for e in index.get("items", [])[:24]:
        f = run.path / "explain" / e.get("thumb", "")
        if e.get("thumb") and f.is_file():
            lines = [(Path(e["sample_id"]).name[-22:], "id"), (f"true: {_fit(e.get('target_name') or '?')}", ""),
                     (f"pred: {_fit(e['pred_name'])} {e['prob_pred']:.2f}", "ok" if e.get("correct") else "bad")]
            items.append((f"cam_{len(items)}.png", f.read_bytes(), lines, e["sample_id"]))
    if items:
        doc.para(f"Where the network looks: the class maps of {index.get('explained_class', 'the predicted class')} "
                 f"over the top losses ({index.get('method', 'Grad-CAM')}; full-size maps and saliency in "
                 f"{(run.path / 'explain').resolve()}/index.html).",
                 note=True)
        doc.gallery(items)
