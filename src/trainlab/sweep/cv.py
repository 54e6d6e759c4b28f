"""k-fold cross-validation: ``trainlab cv RECIPE --folds 5 [overrides]``.

Each fold is an ordinary run directory (``OUT/runs/data.fold=K``) of a sweep over ``data.fold``
with ``data.folds=K`` fixed: the training split is dealt into K stratified folds
(``data.base.fold_assignment``) and fold K is the validation split of run K. The test split is
never folded: each fold's best checkpoint is evaluated on it once, and so is the ensemble of the
K models (the mean of their probabilities). ``cv.csv`` and ``cv.json`` hold the per-fold figures,
their mean ± sample std and a 95% t-interval of the mean; ``report.html`` shows that table first.
Started again, finished folds are skipped and a cut-off one resumes, as in every sweep.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from pathlib import Path

from .. import atomic
from ..errors import ConfigError

LOG = logging.getLogger("trainlab")
# two-sided 97.5% quantiles of Student's t by degrees of freedom (k - 1 for k folds)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 14: 2.145, 19: 2.093, 24: 2.064, 29: 2.045}


def t_quantile(dof: int) -> float:
    if dof in T975:
        return T975[dof]
    below = [d for d in T975 if d <= dof]
    return T975[max(below)] if dof < 30 else 1.96


def mean_interval(xs: list[float]) -> dict:
    """Mean, sample std and the 95% t-interval of the mean over folds."""
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return {"mean": None, "std": None, "low": None, "high": None, "n": 0}
    mean = statistics.fmean(xs)
    std = statistics.stdev(xs) if len(xs) > 1 else 0.0
    half = t_quantile(len(xs) - 1) * std / len(xs) ** 0.5 if len(xs) > 1 else float("nan")
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": len(xs)}


def make_sweep(recipe: str, folds: int, overrides=(), out=None):
    from . import from_args

    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds")
    bad = [o for o in overrides if o.split("=", 1)[0] in ("data.fold", "data.folds")]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: trainlab cv sets data.folds and data.fold itself (use --folds)")
    out = out or Path("sweeps") / f"{Path(recipe).stem}-cv{folds}"
    return from_args(recipe, [f"data.fold={','.join(str(k) for k in range(folds))}", f"data.folds={folds}"],
                     overrides, None, out)


def _test_probs(ckpt: Path):
    """(probabilities [N, C], targets [N]) of a checkpoint on its test split, in split order."""
    import torch

    from .. import config as config_mod
    from ..api import load
    from ..build import build_parts
    from ..engine.evaluate import predict
    from ..engine.runtime import setup_runtime

    model = load(ckpt)
    cfg = config_mod.load(model.trainlab_config, [])
    device = setup_runtime(cfg, distributed_ok=False)
    parts = build_parts(cfg, device, model=model, data_meta=model.trainlab_meta)
    if "test" not in parts.loaders:
        return None
    p = predict(model.to(device), parts.task, parts.loaders["test"], device, cfg.train.precision)
    order = torch.argsort(p["index"])
    return p["probs"][order].float(), p["target"][order]


def ensemble(ckpts: list[Path]) -> dict | None:
    """Accuracy of the mean of the folds' probabilities on the test split, with its Wilson interval."""
    from ..analysis.stats import wilson

    got = [_test_probs(c) for c in ckpts]
    if not got or any(g is None for g in got):
        return None
    targets = got[0][1]
    if any(len(g[1]) != len(targets) or bool((g[1] != targets).any()) for g in got):
        raise ConfigError("the folds' test splits differ (were they trained on different data?)")
    probs = sum(g[0] for g in got) / len(got)
    right = int((probs.argmax(1) == targets).sum())
    lo, hi = wilson(right, len(targets))
    singles = [float((g[0].argmax(1) == targets).float().mean()) for g in got]
    return {"models": len(got), "samples": len(targets), "acc1": right / len(targets), "low": lo, "high": hi,
            "best_single": max(singles)}


def summarize(sweep, result: dict) -> dict:
    """cv.csv, cv.json and the report's preface from the sweep's runs."""
    folds = [r for r in result["runs"] if r.get("finished") and r.get("best") is not None]
    valid = mean_interval([r["best"] for r in folds])
    test = mean_interval([r.get("test") for r in folds])
    ens = None
    ckpts = [sweep.out / "runs" / r["run"] / "checkpoints" / "best.pt" for r in folds]
    from .. import config as config_mod

    task = config_mod.load(sweep.recipe, sweep.overrides).task.name  # every fold's, but for data.fold
    if len(folds) == len(result["runs"]) and all(c.is_file() for c in ckpts) and task in ("classification", "video"):
        ens = ensemble(ckpts)
    summary = {"folds": len(result["runs"]), "finished": len(folds), "monitor": folds[0]["monitor"] if folds else None,
               "test_metric": folds[0].get("test_metric") if folds else None, "valid": valid, "test": test,
               "ensemble": ens, "per_fold": [{k: r.get(k) for k in ("run", "data.fold", "best", "best_epoch", "test",
                                                                   "train_seconds")} for r in result["runs"]]}
    atomic.write_text(sweep.out / "cv.json", json.dumps(summary, indent=2))
    with atomic.atomic_open(sweep.out / "cv.csv", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "best_valid", "best_epoch", "test", "train_seconds"])
        for f in summary["per_fold"]:
            w.writerow([f["data.fold"], f["best"], f["best_epoch"], f["test"], f["train_seconds"]])
        for name, key in (("mean", "mean"), ("std", "std"), ("ci95_low", "low"), ("ci95_high", "high")):
            w.writerow([name, valid[key], "", test[key], ""])
        if ens:
            w.writerow(["ensemble", "", "", ens["acc1"], ""])
    return summary


def table(summary: dict) -> tuple[list[str], list[list]]:
    pct = lambda m: (m or "").split(".")[-1].startswith("acc")  # noqa: E731
    k = lambda m: 100 if pct(m) else 1  # noqa: E731
    mon, tm = summary["monitor"] or "", summary["test_metric"] or ""

    def fmt(v, m):
        return "-" if v is None else f"{v * k(m):.2f}"

    rows = [[f["data.fold"], fmt(f["best"], mon), f["best_epoch"], fmt(f["test"], tm)] for f in summary["per_fold"]]
    for label, x, m in (("valid", summary["valid"], mon), ("test", summary["test"], tm)):
        if x["mean"] is not None:
            rows.append([f"{label}: mean ± std [95% CI of the mean]",
                         f"{fmt(x['mean'], m)} ± {fmt(x['std'], m)} [{fmt(x['low'], m)}, {fmt(x['high'], m)}]"
                         if label == "valid" else "", "",
                         f"{fmt(x['mean'], m)} ± {fmt(x['std'], m)} [{fmt(x['low'], m)}, {fmt(x['high'], m)}]"
                         if label == "test" else ""])
    e = summary.get("ensemble")
    if e:
        rows.append([f"ensemble of {e['models']} (mean probability)", "", "",
                     f"{e['acc1'] * 100:.2f} [{e['low'] * 100:.1f}, {e['high'] * 100:.1f}]"])
    return ["fold", f"best {mon}" + (" (%)" if pct(mon) else ""), "best epoch", f"test {tm}" + (" (%)" if pct(tm) else "")], rows


def run_cv(recipe: str, folds: int, overrides=(), out=None, parallel: int = 1) -> dict:
    from ._exec import Executor
    from . import prepare_dir
    from .results import write_results

    sweep = make_sweep(recipe, folds, overrides, out)
    specs = sweep.runs()
    prepare_dir(sweep)
    statuses = Executor(sweep.out, parallel).run_all(specs)
    result = write_results(sweep, specs, statuses, ["data.fold"], report=False)
    summary = summarize(sweep, result)
    headers, rows = table(summary)
    dirs = [sweep.out / "runs" / r["run"] for r in result["runs"] if r.get("finished") and r.get("best") is not None]
    note = ("Each fold's validation split is one of the stratified folds of the training data; the test split is "
            "the same for every fold and evaluated once per fold model, then once for their ensemble (mean of "
            "probabilities; its 95% Wilson interval in brackets). The interval of a mean is Student's t over folds.")
    if len(dirs) > 1:
        from ..analysis.report import write_report

        result["report"], _ = write_report(dirs, sweep.out / "report.html", title=f"trainlab cv: {sweep.out.name}",
                                           preface=[(f"{folds}-fold cross-validation", note, headers, rows)])
    return {**result, "summary": summary, "table": (headers, rows), "out": sweep.out}
