"""A lab's comparison table: one row per configuration (a named run, or a grid cell over its
seeds), columns chosen by the lab, ranked on the validation split and never on the test split.

Parameters and the weights' file size come from the report's model summary of the checkpoint
(the weights-only file, as best.pt holds them: the file a course hands in); test accuracy carries its 95%
Wilson interval (one run) or the mean +- std over seeds; per-class precision/recall come from
eval_test.json. Everything is read from the run directories: nothing is retrained.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ..sweep.lab import COLUMNS
from .plots import percent
from .rundata import RunData
from .stats import wilson


def model_facts(summary) -> dict:
    """Trainable and total parameters and the weights-only file size from a model summary (the one
    the report already made from the run's checkpoint; tied tensors counted once)."""
    if summary is None:
        return {}
    a = summary.anatomy
    return {"params": a.total_params, "trainable": a.trainable_params, "weights_bytes": summary.sizes["weights_only"]}


def _trainable(n, run: RunData):
    """The trainable count at the start; a run that unfreezes later (model.unfreeze_epoch) says so."""
    epoch = (run.config.get("model") or {}).get("unfreeze_epoch")
    if n is None or epoch is None:
        return n
    every = (run.config.get("model") or {}).get("unfreeze_every") or 0
    return f"{n:,}; " + (f"a layer group more every {every} epochs after epoch {epoch}" if every
                         else f"all after epoch {epoch}")


def _mean_std(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return None, None
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None


def _pm(metric: str, xs: list, digits: int = 2) -> str:
    mean, std = _mean_std(xs)
    if mean is None:
        return "-"
    k = 100 if percent(metric) else 1
    return f"{mean * k:.{digits}f}" + (f" ± {std * k:.{digits}f}" if std is not None else "")


def _test_cell(metric: str, runs: list[RunData]) -> str:
    vals = [r.final.get(metric) for r in runs if r.final and metric in r.final]
    if len(vals) == 1 and percent(metric):
        n = runs[0].final.get("samples") or (runs[0].eval_test or {}).get("samples")
        if n:
            lo, hi = wilson(round(vals[0] * n), int(n))
            return f"{vals[0] * 100:.2f} [{lo * 100:.1f}, {hi * 100:.1f}]"
    return _pm(metric, vals)


def _per_class(runs: list[RunData]) -> str:
    ev = runs[0].eval_test or {}
    rows = ev.get("per_class") or []
    if not rows:
        return "-"
    if len(rows) > 6:
        m = ev.get("macro") or {}
        return f"macro {m.get('precision', 0) * 100:.0f} / {m.get('recall', 0) * 100:.0f}" if m else "-"
    return "; ".join(f"{r['class']} {r['precision'] * 100:.0f} / {r['recall'] * 100:.0f}" for r in rows)


def _throughput(runs: list[RunData]) -> str:
    rates = [y for r in runs for y in r.series("train", f"{r.unit}_per_s")[1]]
    return "-" if not rates else f"{statistics.fmean(rates):,.0f} {runs[0].unit}/s"


@dataclass
class LabTable:
    headers: list
    rows: list             # best first
    configs: list          # the configurations, in the rows' order
    how: str               # how it is ranked, in words
    cols: list             # the column keys after rank and configuration
    valid: list            # (mean, std or None) of the ranked validation value, per row, as numbers
    scale: float = 1.0     # 100 where the table shows that value in percent


def lab_rows(groups: dict[str, list[RunData]], what: dict[str, str], facts: dict[str, dict],
             columns=COLUMNS) -> LabTable:
    """``groups``: configuration -> its runs (seeds); ``what``: configuration -> its recipe and
    overrides in words; ``facts``: configuration -> ``model_facts``."""
    first = next(r for rs in groups.values() for r in rs)
    monitor, mode = first.monitor, first.direction(first.monitor)
    split, key = monitor.split(".", 1)
    test_key = key if first.final and key in first.final else next(
        (m for m in first.metrics if m != "loss" and first.final and m in first.final), "loss")

    def score(rs):
        mean, _ = _mean_std([r.best_value() for r in rs])
        return (mean is None, -(mean or 0) if mode == "max" else (mean or 0))

    order = sorted(groups, key=lambda c: score(groups[c]))
    unit = lambda m: " (%)" if percent(m) else ""  # noqa: E731
    seeds = max(len(rs) for rs in groups.values())
    heads = {"recipe": "recipe and overrides", "valid": f"best {monitor}{unit(key)}",
             "test": f"test {test_key}{unit(test_key)}" + (" [95% CI]" if seeds == 1 and percent(test_key) else ""),
             "acc5": "test acc5 (%)", "per_class": "per-class precision / recall (%)",
             "trainable": "trainable params", "params": "total params", "weights_mb": "weights file (MB)",
             "epochs": "epochs", "time": "train time (s)", "throughput": "throughput"}
    cols = [c for c in columns if c != "acc5" or "acc5" in first.metrics]
    headers = ["rank", "configuration", *[heads[c] for c in cols]]
    rows, valid = [], []
    for i, cfg in enumerate(order, 1):
        rs, f = groups[cfg], facts.get(cfg, {})
        cell = {"recipe": what.get(cfg, ""), "valid": _pm(key, [r.best_value() for r in rs]),
                "test": _test_cell(test_key, rs), "acc5": _pm("acc5", [(r.final or {}).get("acc5") for r in rs]),
                "per_class": _per_class(rs), "trainable": _trainable(f.get("trainable"), rs[0]), "params": f.get("params"),
                "weights_mb": None if "weights_bytes" not in f else f"{f['weights_bytes'] / 1e6:.2f}",
                "epochs": max(r.epochs for r in rs), "time": _pm("time", [r.train_seconds() for r in rs], 1),
                "throughput": _throughput(rs)}
        rows.append([i, cfg + (f" ({len(rs)} seeds)" if len(rs) > 1 else ""), *[cell[c] for c in cols]])
        valid.append(_mean_std([r.best_value() for r in rs]))
    named = (first.final or {}).get("split_name")
    how = (f"Ranked on the best {monitor} over the epochs, the validation split ({'lower' if mode == 'min' else 'higher'}"
           f" is better); the test split is reported, never used to choose. "
           + ("Test accuracy of one run: its 95% Wilson interval in brackets. " if seeds == 1 else
              "Over seeds: mean ± sample standard deviation. ")
           + "Weights file: the weights-only file, as best.pt holds them."
           + (f" Here the test split is {named}." if named else ""))
    return LabTable(headers, rows, order, how, cols, valid, 100.0 if percent(key) else 1.0)
