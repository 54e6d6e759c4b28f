"""Lab files: one YAML per course lab, run with ``trainlab lab FILE [--quick]`` (or ``trainlab sweep``).

A lab file is a sweep file that can also list **named runs**, each its own recipe and overrides,
and the **deliverables** the lab hands in::

    lab: Cats vs dogs with six models            # the title of the lab report
    question: Which architecture ...             # what the comparison answers (shown first)
    runs:                                        # name -> recipe (relative to this file) + overrides
      mlp: {recipe: ../catsdogs-mlp.yaml}
      backbone: {recipe: ../tiny-imagenet-resnet18.yaml, role: helper}   # not ranked
      resnet18: {recipe: ../catsdogs-resnet18.yaml, overrides: {model.weights: "run:backbone"}}
    quick:                                       # the 2-core variant: `--quick`
      minutes: 8                                 # its wall time on 2 cores, as measured
      overrides: {train.epochs: 2}               # for every run
      runs: {backbone: {train.epochs: 1}}        # for one run
    prepare:                                     # data a lab makes itself, when missing
      - {creates: data/moving-digits, command: "prepare moving-digits data/moving-digits --mnist ..."}
    deliverables: {columns: [...], curves: multiples, diff: [[a, b]], predict: {...}, ...}

A grid lab (the MNIST optimizer x schedule lab) keeps ``recipe:`` and ``grid:`` instead of
``runs:``. ``"run:NAME"`` as an override value is NAME's best checkpoint, and makes this run
start after NAME is done. The quick and the full variant write to different folders
(``sweeps/<lab>-quick``, ``sweeps/<lab>``); each resumes when started again.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from .. import config as config_mod
from ..errors import ConfigError

LAB_KEYS = ("lab", "question", "runs", "quick", "prepare", "deliverables")
RUN_KEYS = ("recipe", "overrides", "role")
QUICK_KEYS = ("minutes", "overrides", "runs", "seeds", "grid", "deliverables")
REF = "run:"
DELIVERABLES = ("columns", "curves", "diff", "predict", "layers", "generate", "devices", "tensorboard")
COLUMNS = ("recipe", "valid", "test", "acc5", "per_class", "trainable", "params", "weights_mb", "epochs",
           "time", "throughput")
LOG = logging.getLogger("trainlab")


def is_lab(spec: dict) -> bool:
    return "lab" in spec or "runs" in spec


def read_lab(path: str | Path, quick: bool = False) -> dict:
    """The lab file with the chosen variant applied: {'spec': sweep keys, 'lab': the lab's own}."""
    path = Path(path)
    data = config_mod.read_recipe(path)
    from . import SWEEP_KEYS

    if not is_lab(data) and "recipe" not in data and {"data", "model", "train"} & set(data):
        raise ConfigError(f"{path} is a recipe, not a lab file (a lab file lists 'runs:' or a 'recipe:' and 'grid:'; "
                          f"see docs/labs.md and recipes/labs/); to train it: trainlab train {path}")
    unknown = [k for k in data if k not in SWEEP_KEYS + LAB_KEYS]
    if unknown:
        raise ConfigError(f"{path}: unknown lab key(s) {', '.join(unknown)}; valid: {', '.join(SWEEP_KEYS + LAB_KEYS)}")
    if "search" in data:
        raise ConfigError(f"{path}: a lab runs the runs it lists; an Optuna search belongs in a sweep file "
                          f"(trainlab sweep RECIPE --search optuna, docs/sweeps-and-scale.md)")
    if "runs" in data and ("grid" in data or "recipe" in data):
        raise ConfigError(f"{path}: a lab lists named 'runs:' or a 'recipe:' with a 'grid:', not both")
    if "runs" not in data and "recipe" not in data:
        raise ConfigError(f"{path}: a lab needs 'runs:' (name -> recipe) or 'recipe:' and 'grid:'")
    q = data.get("quick") or {}
    if quick and not q:
        raise ConfigError(f"{path}: this lab has no quick variant (a 'quick:' section)")
    bad = [k for k in q if k not in QUICK_KEYS]
    if bad:
        raise ConfigError(f"{path}: unknown key(s) under quick: {', '.join(bad)}; valid: {', '.join(QUICK_KEYS)}")
    spec = {k: data[k] for k in SWEEP_KEYS if k in data}
    deliverables = dict(data.get("deliverables") or {})
    if quick:
        spec["overrides"] = {**_mapping(spec.get("overrides"), path, "overrides"),
                             **_mapping(q.get("overrides"), path, "quick.overrides")}
        for key in ("seeds", "grid"):
            if key in q:
                spec[key] = q[key]
        deliverables.update(q.get("deliverables") or {})
    _check_deliverables(deliverables, path, list(data.get("runs") or {}))
    runs = _named_runs(data.get("runs") or {}, path, q.get("runs"), quick)
    out = spec.get("out") or str(Path("sweeps") / (path.stem + ("-quick" if quick else "")))
    if quick and spec.get("out"):
        out = spec["out"] + "-quick"
    lab = {"title": data.get("lab") or path.stem, "question": data.get("question"), "file": str(path),
           "variant": "quick" if quick else "full", "minutes": q.get("minutes") if quick else None,
           "prepare": data.get("prepare") or [], "deliverables": deliverables,
           "roles": {n: r.get("role", "compared") for n, r in (data.get("runs") or {}).items()}}
    return {"spec": {**spec, "out": out}, "runs": runs, "lab": lab}


def _check_deliverables(d: dict, path: Path, names: list) -> None:
    bad = [k for k in d if k not in DELIVERABLES]
    if bad:
        raise ConfigError(f"{path}: unknown deliverable(s) {', '.join(bad)}; valid: {', '.join(DELIVERABLES)}")
    cols = [c for c in d.get("columns") or [] if c not in COLUMNS]
    if cols:
        raise ConfigError(f"{path}: unknown column(s) {', '.join(map(str, cols))}; valid: {', '.join(COLUMNS)}")
    if d.get("curves", "multiples") not in ("multiples", "overlay"):
        raise ConfigError(f"{path}: curves: {d['curves']!r}; valid: multiples, overlay")
    used = [n for pair in d.get("diff") or [] for n in (pair if isinstance(pair, list) else [pair])]
    used += list(d.get("layers") or []) + list((d.get("generate") or {}).get("runs") or [])
    used += [x for x in ((d.get("devices") or {}).get("run"), (d.get("predict") or {}).get("run")) if x]
    unknown = [n for n in used if names and n not in names and n != "best"]
    if unknown:
        raise ConfigError(f"{path}: deliverables name run(s) {', '.join(map(str, unknown))} that 'runs' does not list")
    if any(not isinstance(p, list) or len(p) != 2 for p in d.get("diff") or []):
        raise ConfigError(f"{path}: diff: give pairs of run names, e.g. [[a, b]]")


def _mapping(value, path, where) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: '{where}' must be a mapping of dotted keys to values")
    return dict(value)


def _named_runs(runs: dict, path: Path, quick_runs, quick: bool) -> dict:
    if not isinstance(runs, dict):
        raise ConfigError(f"{path}: 'runs' must map a run name to {{recipe: PATH, overrides: {{...}}}}")
    quick_runs = _mapping(quick_runs, path, "quick.runs")
    stray = [n for n in quick_runs if n not in runs]
    if stray:
        raise ConfigError(f"{path}: quick.runs names run(s) {', '.join(stray)} that 'runs' does not list")
    out = {}
    for name, run in runs.items():
        if not isinstance(run, dict) or "recipe" not in run:
            raise ConfigError(f"{path}: run '{name}' needs 'recipe: PATH' (relative to the lab file)")
        bad = [k for k in run if k not in RUN_KEYS]
        if bad:
            raise ConfigError(f"{path}: run '{name}': unknown key(s) {', '.join(bad)}; valid: {', '.join(RUN_KEYS)}")
        if not str(name).replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{path}: run name '{name}': use letters, digits, '_' and '-' (it names a folder)")
        if run.get("role", "compared") not in ("compared", "helper"):
            raise ConfigError(f"{path}: run '{name}': role {run['role']!r}; valid: compared (the default), helper "
                              f"(a run the others build on, not ranked)")
        recipe_path = path.parent / run["recipe"]
        recipe = config_mod.read_recipe(recipe_path)
        recipe.setdefault("run", {}).setdefault("name", recipe_path.stem)
        overrides = {**_mapping(run.get("overrides"), path, f"runs.{name}.overrides"),
                     **(_mapping(quick_runs.get(name), path, f"quick.runs.{name}") if quick else {})}
        out[str(name)] = {"recipe": recipe, "overrides": overrides}
    for name, run in out.items():
        for ref in _refs(run["overrides"]):
            if ref not in out:
                raise ConfigError(f"{path}: run '{name}' uses '{REF}{ref}', but no run is named '{ref}'")
            if ref == name:
                raise ConfigError(f"{path}: run '{name}' uses its own checkpoint")
    return out


def _refs(overrides: dict) -> list[str]:
    return [v[len(REF):] for v in overrides.values() if isinstance(v, str) and v.startswith(REF)]


def named_specs(sweep) -> list:
    """A lab's runs x seeds as RunSpecs, in file order; ``run:NAME`` becomes NAME's best.pt."""
    from . import RunSpec, check_distinct, run_name

    out = []
    for name, run in sweep.named.items():
        for seed in sweep.seeds or [None]:
            ov = {**sweep.overrides, **run["overrides"]}
            after = tuple(_refs(ov))
            ov = {k: _resolve(v, sweep, seed) for k, v in ov.items()}
            if seed is not None:
                ov["train.seed"] = seed
            labels = {"config": name}
            out.append(RunSpec(run_name(labels, seed), ov, labels, seed, run["recipe"],
                               tuple(run_name({"config": a}, seed) for a in after)))
    check_distinct(out)
    for r in out:  # a run:NAME checkpoint need not exist yet: the config checks keys and values only
        sweep.check(r.overrides, f"run {r.name}", r.recipe)
    return out


def _resolve(value, sweep, seed):
    from . import run_name

    if isinstance(value, str) and value.startswith(REF):
        return str(sweep.out / "runs" / run_name({"config": value[len(REF):]}, seed) / "checkpoints" / "best.pt")
    return value


def prepare_data(lab: dict) -> list[str]:
    """Run each ``prepare`` step whose output is missing (``trainlab prepare ...``, as written)."""
    done = []
    for step in lab["prepare"]:
        if not isinstance(step, dict) or "creates" not in step or "command" not in step:
            raise ConfigError(f"{lab['file']}: each prepare step is {{creates: PATH, command: 'prepare ...'}}")
        if Path(step["creates"]).exists():
            continue
        argv = shlex.split(step["command"])
        if not argv or argv[0] != "prepare":
            raise ConfigError(f"{lab['file']}: prepare command '{step['command']}' must be a `trainlab prepare` "
                              f"command (written without 'trainlab')")
        from ..cli import main

        if main(argv) != 0:
            raise ConfigError(f"{lab['file']}: '{step['command']}' failed")
        done.append(step["creates"])
    return done


def from_file(path: str | Path, quick: bool = False, overrides=(), seeds=None, out=None):
    """(Sweep, lab) for a lab file; command-line overrides reach every run."""
    from . import Sweep, parse_seeds

    read = read_lab(path, quick)
    spec, lab = read["spec"], read["lab"]
    fixed = _mapping(spec.get("overrides"), path, "overrides")
    fixed.update(dict(config_mod.parse_override(o) for o in overrides))
    if read["runs"]:
        first = next(iter(read["runs"].values()))["recipe"]
        sweep = Sweep(first, Path(out or spec["out"]), {}, parse_seeds(seeds if seeds is not None else
                      spec.get("seeds")), fixed, {}, None, read["runs"])
    else:
        from . import from_args

        sweep = from_args(str(path), (), overrides, seeds, out or spec["out"], _lab_spec=spec)
    return sweep, lab


def run_lab(sweep, lab: dict, parallel: int = 1, argv: str | None = None) -> dict:
    """Prepare the data, run every run (skipping finished ones), then results.csv and the lab report."""
    from . import prepare_dir
    from ._exec import Executor
    from .results import write_results

    prepare_data(lab)
    specs = sweep.runs()
    prepare_dir(sweep)
    statuses = Executor(sweep.out, parallel).run_all(specs)
    keys = ["config"] if sweep.named else list(sweep.grid)
    helpers = {f"config={n}" for n, role in lab.get("roles", {}).items() if role == "helper"}
    result = write_results(sweep, specs, statuses, keys, report=False, unranked=helpers)
    from ..analysis.lab_report import write_lab_report

    try:
        result["report"] = write_lab_report(sweep, lab, specs, argv)
    except Exception as e:  # noqa: BLE001 - the CSV files are the result; a report is a view of them
        LOG.warning("lab report not written: %s", e)
        result["report"] = None
    return result
