"""A sweep's results: runs.csv (one row per run), results.csv (one row per grid cell: mean and
standard deviation over seeds, ranked) and report.html (that table, then the multi-run report).

Reading results needs no torch: the run readers are imported inside the functions that use them,
so a tool that only lists or ranks a sweep's folder starts without loading torch."""

from __future__ import annotations

import csv
import logging
import statistics
from pathlib import Path

from .. import atomic
from ..errors import DataError

LOG = logging.getLogger("trainlab")


def _load(path: Path, label: str):
    from ..analysis.rundata import RunData

    try:
        return RunData.load(path, label)
    except DataError:  # not started, or killed before its first epoch
        return None


def run_rows(specs: list, out: Path, statuses: dict) -> list[dict]:
    from ..analysis.compare import primary_metric

    rows = []
    for s in specs:
        run = _load(out / "runs" / s.name, s.name)
        row = {"run": s.name, "cell": s.cell, **s.labels, "seed": s.seed, "status": statuses.get(s.name, ""),
               "finished": (out / "runs" / s.name / "done.json").exists()}  # a failed run never counts
        if run is not None:
            test_key = primary_metric(run)
            row.update({"monitor": run.monitor, "mode": run.direction(run.monitor), "best": run.best_value(),
                        "best_epoch": run.best_epoch,
                        "epochs": run.epochs, "test_metric": test_key,
                        "test": run.final.get(test_key) if run.final and test_key else None,
                        "train_seconds": round(run.train_seconds(), 2)})
        rows.append(row)
    return rows


def _mean_std(xs: list) -> tuple:
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def cell_rows(rows: list[dict], grid_keys: list[str], unranked=()) -> list[dict]:
    """Group runs by cell; mean and sample std over seeds; ranked best first on the monitor. Cells in
    ``unranked`` (a lab's helper runs) and cells judged by another monitor than the first ranked cell's
    get no rank and come last: a loss is never ranked against an accuracy."""
    cells: dict[str, list] = {}
    for r in rows:
        cells.setdefault(r["cell"], []).append(r)
    out = []
    for cell, rs in cells.items():
        monitor = next((r["monitor"] for r in rs if r.get("monitor")), "")
        done = [r for r in rs if r.get("best") is not None and r.get("finished")]
        best_mean, best_std = _mean_std([r["best"] for r in done])
        test_mean, test_std = _mean_std([r.get("test") for r in done])
        out.append({"cell": cell, **{k: rs[0].get(k) for k in grid_keys}, "runs": len(done), "of": len(rs),
                    "monitor": monitor, "best_mean": best_mean, "best_std": best_std,
                    "test_metric": next((r["test_metric"] for r in done if r.get("test_metric")), None),
                    "test_mean": test_mean, "test_std": test_std,
                    "train_seconds_mean": _mean_std([r.get("train_seconds") for r in done])[0]})
    ranked = [r for r in rows if r["cell"] not in unranked and r.get("mode")]
    monitor = ranked[0]["monitor"] if ranked else None
    high = (ranked[0]["mode"] if ranked else "max") == "max"  # as the runs' task declared
    judged = lambda c: c["cell"] not in unranked and c["monitor"] == monitor  # noqa: E731
    out.sort(key=lambda c: (not judged(c), c["best_mean"] is None,
                            -(c["best_mean"] or 0) if high else (c["best_mean"] or 0)))
    for i, c in enumerate(out, 1):
        c["rank"] = i if judged(c) else None
    return out


def _write_csv(path: Path, rows: list[dict], first: list[str]) -> None:
    keys = first + [k for r in rows for k in r if k not in first]
    keys = list(dict.fromkeys(keys))
    with atomic.atomic_open(path, newline="") as fh:  # a reader never sees half a table
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _round(r.get(k)) for k in keys})


def _round(v):
    return round(v, 6) if isinstance(v, float) else v


def write_results(sweep, specs: list, statuses: dict, grid_keys: list | None = None, report: bool = True,
                  unranked=()) -> dict:
    out = sweep.out
    rows = run_rows(specs, out, statuses)
    grid_keys = list(sweep.grid) if grid_keys is None else grid_keys
    cells = cell_rows(rows, grid_keys, unranked)
    _write_csv(out / "runs.csv", rows, ["run", "cell", *grid_keys, "seed", "status"])
    _write_csv(out / "results.csv", cells, ["rank", "cell", *grid_keys, "runs", "of"])
    dirs = [out / "runs" / r["run"] for r in rows if r.get("best") is not None and r.get("finished")]
    report = _report(out, dirs, cells) if dirs and report else None
    return {"runs": rows, "cells": cells, "results": out / "results.csv", "report": report}


def cell_table(cells: list[dict]) -> tuple[list[str], list[list]]:
    """Headers and rows for people: accuracies in percent, mean ± std."""
    monitor = cells[0]["monitor"] if cells else ""
    test = next((c["test_metric"] for c in cells if c["test_metric"]), None)
    pct = lambda m: (m or "").split(".")[-1].startswith("acc")  # noqa: E731

    def fmt(metric, mean, std, column):
        if mean is None:
            return "-"
        scale = 100 if pct(metric) else 1
        named = "" if metric == column else f"{metric}{' (%)' if pct(metric) else ''} "  # judged by another
        return f"{named}{mean * scale:.2f} ± {std * scale:.2f}"

    headers = ["rank", "cell", "seeds", f"best {monitor}{' (%)' if pct(monitor) else ''} mean ± std",
               f"test {test}{' (%)' if pct(test) else ''} mean ± std", "train time (s)"]
    rows = [["-" if c["rank"] is None else c["rank"], c["cell"], f"{c['runs']}/{c['of']}",
             fmt(c["monitor"] or monitor, c["best_mean"], c["best_std"], monitor),
             fmt(c["test_metric"] or test, c["test_mean"], c["test_std"], test),
             "-" if c["train_seconds_mean"] is None else f"{c['train_seconds_mean']:,.1f}"] for c in cells]
    return headers, rows


def _report(out: Path, dirs: list[Path], cells: list[dict]):
    from ..analysis.report import write_report

    headers, rows = cell_table(cells)
    note = ("Each cell of the grid over its seeds: mean and sample standard deviation of the best "
            "validation value over the epochs, and of the test metric of the best checkpoint.")
    try:
        html, _ = write_report(dirs, out / "report.html", title=f"trainlab sweep: {out.name}",
                               preface=[("Grid cells, ranked (mean ± std over seeds)", note, headers, rows)])
    except Exception as e:  # noqa: BLE001 - the CSV files are the result; a report is a view of them
        LOG.warning("sweep report not written: %s", e)
        return None
    return html
