"""`trainlab sweep`, `bench devices` and `speedrun`: many runs, and their comparison."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ._common import add_overrides, nonneg_int, positive_int


def add_sweep(sub):
    sw = sub.add_parser("sweep", help="grid or Optuna search of overrides: runs, results.csv, ranked report")
    sw.add_argument("target", help="recipe .yaml, or a sweep .yaml (recipe:, grid:, seeds:, search: ...)")
    add_overrides(sw, "fixed overrides for every run, e.g. train.epochs=5")
    sw.add_argument("--grid", nargs="+", metavar="KEY=V1,V2",
                    help="grid axes, e.g. optim.name=adam,nadam,sgd (an item with one value is a fixed override)")
    sw.add_argument("--seeds", help="seeds per cell: a count (3 -> 0,1,2) or a list (1,5,9)")
    sw.add_argument("--parallel", type=positive_int, default=1, help="runs at a time (threads per run: cores // N)")
    sw.add_argument("--out", help="sweep folder (default: sweeps/<recipe name>); the same folder resumes")
    sw.add_argument("--search", choices=["optuna"], help="search instead of a grid (TPE + median pruner)")
    sw.add_argument("--trials", type=positive_int, help="search: trials in total over all workers")
    sw.add_argument("--objective", help="search: metric to optimise, e.g. valid.acc1 (default: train.monitor)")
    sw.add_argument("--space", nargs="+", metavar="KEY=SPEC",
                    help="search space: optim.lr=loguniform(1e-4,1e-1) optim.name=[adam,sgd] train.epochs=int(2,5)")
    sw.add_argument("--storage", help="search: Optuna storage URL (default sqlite:///OUT/study.db); "
                                      "a shared PostgreSQL/MySQL URL lets several machines work on one study")
    sw.add_argument("--study", help="search: study name (default: the sweep folder's name)")
    sw.add_argument("--quick", action="store_true", help="a lab file: its quick variant (minutes on 2 CPU cores)")
    return sw


def add_lab(sub):
    lab = sub.add_parser("lab", help="run a whole lab (recipes/labs/*.yaml): every run, its deliverables, one report")
    lab.add_argument("file", help="a lab file, e.g. recipes/labs/catsdogs.yaml")
    add_overrides(lab, "overrides for every run, e.g. data.max_samples=64")
    lab.add_argument("--quick", action="store_true", help="the lab's quick variant (minutes on 2 CPU cores; "
                                                           "its own folder sweeps/<lab>-quick)")
    lab.add_argument("--parallel", type=positive_int, default=1, help="runs at a time (threads per run: cores // N)")
    lab.add_argument("--seeds", help="seeds per configuration: a count or a list (default: the lab file's)")
    lab.add_argument("--out", help="lab folder (default: sweeps/<lab>[-quick]); the same folder resumes")
    return lab


def cmd_lab(args) -> int:
    from ..sweep import lab
    from ..sweep.results import cell_table

    sw, info = lab.from_file(args.file, args.quick, args.overrides, args.seeds, args.out)
    result = lab.run_lab(sw, info, args.parallel, " ".join(args.argv))
    headers, rows = cell_table(result["cells"])
    print("  ".join(headers))
    for r in rows:
        print("  ".join("" if v is None else str(v).removeprefix("config=") for v in r))
    print(f"results: {result['results']}" + (f"; report: {result['report']}" if result.get("report") else ""))
    if result.get("report"):
        print(f"open it: xdg-open {result['report']}   (or any browser; it is one self-contained file)")
    return _unfinished(result["runs"])


def cmd_sweep(args) -> int:
    from .. import sweep
    from ..config import read_recipe
    from ..sweep.lab import is_lab
    from ..sweep.results import cell_table

    if Path(args.target).is_file() and is_lab(read_recipe(args.target)):
        if args.grid or args.search:
            raise ConfigError(f"{args.target} is a lab file: its runs are listed in it (no --grid or --search)")
        args.file = args.target
        return cmd_lab(args)
    if args.quick:
        raise ConfigError("--quick is for lab files (recipes/labs/*.yaml)")
    search = None
    if args.search:
        search = {"method": args.search, "trials": args.trials, "objective": args.objective,
                  "storage": args.storage, "study": args.study, "space": args.space}
        search = {k: v for k, v in search.items() if v is not None}
    sw = sweep.from_args(args.target, args.grid or (), args.overrides, args.seeds, args.out, search)
    if sw.search:
        from ..sweep.search import run_search

        result = run_search(sw, args.parallel)
    else:
        result = sweep.run_sweep(sw, args.parallel)
    headers, rows = cell_table(result["cells"])
    print("  ".join(headers))
    for r in rows:
        print("  ".join("" if v is None else str(v) for v in r))
    print(f"results: {result['results']}" + (f"; report: {result['report']}" if result.get("report") else ""))
    return _unfinished(result["runs"])


def _unfinished(runs: list[dict]) -> int:
    """Say which runs are still running elsewhere or did not finish; 1 if any did not."""
    running = [r["run"] for r in runs if r["status"] == "running"]  # other workers' trials
    if running:
        print(f"{len(running)} trial(s) still running in other workers: {', '.join(running)}")
    failed = [r["run"] for r in runs if r["status"] not in ("done", "pruned", "running")]
    if failed:
        print(f"{len(failed)} run(s) not finished: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}; "
              f"start the same command again to resume them", file=sys.stderr)
        return 1
    return 0


def add_bench(sub):
    b = sub.add_parser("bench", help="time the same training steps on CPU, one GPU and every GPU count")
    b.add_argument("what", choices=["devices"])
    b.add_argument("recipe")
    add_overrides(b, "dotted overrides, e.g. data.batch_size=256")
    b.add_argument("--steps", type=positive_int, default=50, help="timed optimizer steps per device count (after 3 warm-up)")
    return b


def cmd_bench(args) -> int:
    from ..sweep.devices import bench_devices, format_table

    rows, notes = bench_devices(args.recipe, args.overrides, args.steps)
    print(format_table(rows, notes))
    return 0


def add_speedrun(sub):
    from ..speedrun.targets import TARGETS  # the table of targets, without the torch-heavy driver

    sr = sub.add_parser("speedrun", help="time-to-accuracy of a speed recipe over N seeds, against the reference "
                                         "script run for the same time (or to the same goal)")
    sr.add_argument("target", choices=list(TARGETS))
    add_overrides(sr, "dotted overrides for the speed recipe, e.g. data.root=...")
    sr.add_argument("--runs", type=positive_int, default=3, help="runs with seeds first_seed.. (default 3)")
    sr.add_argument("--first-seed", type=nonneg_int, default=0)
    sr.add_argument("--baseline", choices=["same-time", "to-target", "none"], default="same-time",
                    help="train the reference for trainlab's mean time (default), until it reaches the goal, "
                         "or not at all")
    sr.add_argument("--baseline-seconds", type=float, default=None,
                    help="time budget of the baseline (same-time) or its cap (to-target; default 4x the target's budget, at least 30 minutes)")
    sr.add_argument("--out", default=None, help="output folder (default runs/speedrun/TARGET-STAMP)")
    return sr


def cmd_speedrun(args) -> int:
    from ..speedrun import speedrun

    summary = speedrun(args.target, args.runs, tuple(args.overrides), args.out, args.baseline,
                       args.baseline_seconds, args.first_seed)
    print(summary["text"])
    print(f"\nwritten to {summary['dir']}/speedrun.md and speedrun.json")
    return 0


def add_cv(sub):
    cv = sub.add_parser("cv", help="k-fold cross-validation: one run per fold, mean ± std, an interval, the ensemble")
    cv.add_argument("recipe")
    add_overrides(cv, "overrides for every fold, e.g. train.epochs=5")
    cv.add_argument("--folds", type=positive_int, default=5, help="number of stratified folds (default 5)")
    cv.add_argument("--parallel", type=positive_int, default=1, help="folds at a time (threads per run: cores // N)")
    cv.add_argument("--out", help="folder (default: sweeps/<recipe>-cv<folds>); the same folder resumes")
    return cv


def cmd_cv(args) -> int:
    from ..sweep.cv import run_cv

    result = run_cv(args.recipe, args.folds, args.overrides, args.out, args.parallel)
    headers, rows = result["table"]
    print("  ".join(headers))
    for r in rows:
        print("  ".join("" if v is None else str(v) for v in r))
    print(f"cv.csv: {result['out'] / 'cv.csv'}" + (f"; report: {result['report']}" if result.get("report") else ""))
    return _unfinished(result["runs"])
