"""Sweeps: a grid (or an Optuna search) of overrides -> ordinary runs -> one ranked comparison.

    trainlab sweep recipes/mnist.yaml --grid optim.name=adam,nadam,sgd \\
        schedule.name=constant,step,warmup_cosine --seeds 3 --parallel 2

Every run is a plain run directory ``OUT/runs/<name>``, its name spelled from its overrides
(``optim.name=adam,schedule.name=step,seed=1``), run as its own ``python -m trainlab train``
process with ``train.resume=auto``. A run is finished when its ``done.json`` exists, so a
sweep started again skips finished runs and resumes the one that was cut off from its
``last.pt``. ``OUT/sweep.yaml`` records the base recipe and the grid; a restart with another
recipe or grid in the same folder is refused rather than mixed in.

This module is the sweep's definition (grid, seeds, presets, the folder); ``_exec`` runs the
processes, ``search`` drives Optuna, ``results`` writes and ranks results.csv (no torch), and
``devices`` times the same steps on CPU and GPU counts (``trainlab bench devices``).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .. import config as config_mod
from ..errors import ConfigError

LOG = logging.getLogger("trainlab")

# Grid values that stand for a bundle of overrides. The MNIST lab's "warmup" is a linear warmup
# over the first epoch into a constant LR; warmup_cosine warms up into a cosine decay.
PRESETS = {
    "schedule.name": {
        "warmup": {"schedule.name": "constant", "schedule.warmup_epochs": 1},
        "warmup_cosine": {"schedule.name": "cosine", "schedule.warmup_epochs": 1},
        "warmup_step": {"schedule.name": "step", "schedule.warmup_epochs": 1},
    },
}
SWEEP_KEYS = ("recipe", "grid", "seeds", "overrides", "presets", "search", "out", "parallel")


@dataclass
class RunSpec:
    name: str
    overrides: dict            # dotted key -> value, presets expanded, seed included
    labels: dict               # grid key -> the value as written (the cell's coordinates)
    seed: Optional[int] = None
    recipe: Optional[dict] = None  # a lab's named run has its own recipe; None: the sweep's
    after: tuple = ()          # named runs whose checkpoints this one uses (run first)

    @property
    def cell(self) -> str:
        return run_name(self.labels, None)


@dataclass
class Sweep:
    recipe: dict
    out: Path
    grid: dict = field(default_factory=dict)        # key -> list of values (as written)
    seeds: list = field(default_factory=list)       # empty: the recipe's own seed, no seed in names
    overrides: dict = field(default_factory=dict)   # fixed for every run
    presets: dict = field(default_factory=dict)
    search: Optional[dict] = None
    named: dict = field(default_factory=dict)       # a lab's runs: name -> {recipe: dict, overrides: dict}

    def runs(self) -> list[RunSpec]:
        """The grid x seeds (or a lab's named runs x seeds), in a fixed order, each validated as a
        config (names the bad key)."""
        if self.named:
            from .lab import named_specs

            return named_specs(self)
        keys = list(self.grid)
        out = []
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            labels = dict(zip(keys, combo))
            for seed in self.seeds or [None]:
                ov = dict(self.overrides)
                for k, v in labels.items():
                    ov.update(self.expand(k, v))
                if seed is not None:
                    ov["train.seed"] = seed
                out.append(RunSpec(run_name(labels, seed), ov, labels, seed))
        check_distinct(out)
        for r in out:
            self.check(r.overrides, f"run {r.name}")
        return out

    def expand(self, key: str, value) -> dict:
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            return {key: value}  # a list or mapping value (model.init_args.channels=[16,32],...) names no preset
        bundle = {**PRESETS.get(key, {}), **self.presets.get(key, {})}.get(value)
        return dict(bundle) if isinstance(bundle, dict) else {key: value}

    def check(self, overrides: dict, where: str, recipe: Optional[dict] = None) -> config_mod.Config:
        try:
            return config_mod.load(self.recipe if recipe is None else recipe, overrides)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

    def manifest(self) -> dict:
        return {"recipe": self.recipe, "grid": self.grid, "seeds": self.seeds, "overrides": self.overrides,
                "presets": self.presets, "search": self.search, **({"runs": self.named} if self.named else {})}


def check_distinct(specs: list) -> None:
    """Two grid points that would share a run folder (a value listed twice, or values that become the
    same folder name) would mix their runs: refused before anything runs."""
    seen: dict[str, RunSpec] = {}
    for r in specs:
        if r.name in seen:
            a, b = seen[r.name], r
            same = "the same values" if a.labels == b.labels else "values that become the same folder name"
            raise ConfigError(f"two grid points have {same}: {a.labels} and {b.labels} would both run in "
                              f"runs/{r.name}; list each value once, or make them differ in more than "
                              f"punctuation")
        seen[r.name] = r


def run_name(labels: dict, seed: Optional[int]) -> str:
    """``{'optim.name': 'adam'}, 1`` -> ``optim.name=adam,seed=1``, safe as a folder name."""
    parts = [f"{k}={_text(v)}" for k, v in labels.items()] + ([f"seed={seed}"] if seed is not None else [])
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts)) or "base"
    if len(name) > 120:  # long lists of values: keep it readable and unique
        name = name[:100] + "-" + hashlib.sha1(name.encode()).hexdigest()[:10]
    return name


def _text(v) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def split_values(text: str) -> list[str]:
    """'adam,sgd' -> ['adam', 'sgd']; commas inside [..] or (..) stay: '[1,2],[3]' -> 2 values."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    if depth != 0 or any(not v.strip() for v in out):
        raise ConfigError(f"grid values '{text}': unbalanced brackets or an empty value")
    return [v.strip() for v in out]


def parse_grid(items: list[str]) -> tuple[dict, dict]:
    """``['optim.name=adam,sgd', 'train.epochs=3']`` -> (grid axes, fixed overrides).
    An axis needs two or more values; a single value is a fixed override."""
    grid, fixed = {}, {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"grid item '{item}' is not of the form key=value1,value2,...")
        key, raw = item.split("=", 1)
        values = [config_mod.parse_override(f"{key}={v}")[1] for v in split_values(raw)]
        if key.strip() in grid:
            raise ConfigError(f"grid key '{key}' given twice")
        if len(values) > 1:
            grid[key.strip()] = values
        else:
            fixed[key.strip()] = values[0]
    return grid, fixed


def parse_seeds(text) -> list[int]:
    """'3' -> [0, 1, 2]; '1,5,9' -> [1, 5, 9]."""
    if text is None:
        return []
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        return list(range(int(text)))
    try:
        return [int(s) for s in (text if isinstance(text, list) else str(text).split(","))]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give a count (3) or a list of seeds (1,5,9)") from None


def is_sweep_file(path: str | Path) -> bool:
    data = config_mod.read_recipe(path)
    return "recipe" in data or "grid" in data or "search" in data or "runs" in data or "lab" in data


def from_args(target: str, grid_items=(), overrides=(), seeds=None, out=None, search=None,
              _lab_spec: Optional[dict] = None) -> Sweep:
    """A Sweep from a recipe or a sweep YAML plus command-line grid items and overrides (a lab
    file's grid is read by ``lab.from_file``, which hands its variant's keys in ``_lab_spec``)."""
    spec, base_dir = {}, Path(".")
    if _lab_spec is not None:
        spec, base_dir = _lab_spec, Path(target).parent
        recipe_path, default_out = base_dir / spec["recipe"], Path(spec["out"])
    elif is_sweep_file(target):
        spec, base_dir = config_mod.read_recipe(target), Path(target).parent
        unknown = [k for k in spec if k not in SWEEP_KEYS]
        if unknown:
            raise ConfigError(f"{target}: unknown sweep key(s) {', '.join(unknown)}; valid: {', '.join(SWEEP_KEYS)}")
        if "recipe" not in spec:
            raise ConfigError(f"{target}: a sweep file needs 'recipe: PATH' (relative to the sweep file)")
        recipe_path = base_dir / spec["recipe"]
        default_out = Path("sweeps") / Path(target).stem
    else:
        recipe_path, default_out = Path(target), Path("sweeps") / Path(target).stem
    recipe = config_mod.read_recipe(recipe_path)
    recipe.setdefault("run", {}).setdefault("name", recipe_path.stem)
    grid = {k: list(v) if isinstance(v, list) else [v] for k, v in (spec.get("grid") or {}).items()}
    fixed = _as_dict(spec.get("overrides"))
    cli_grid, cli_fixed = parse_grid(list(grid_items))
    grid.update(cli_grid)
    fixed.update(cli_fixed)
    fixed.update(dict(config_mod.parse_override(o) for o in overrides))
    presets = spec.get("presets") or {}
    sweep = Sweep(recipe, Path(out or spec.get("out") or default_out), grid,
                  parse_seeds(seeds if seeds is not None else spec.get("seeds")), fixed, presets,
                  {**(spec.get("search") or {}), **(search or {})} or None)
    bad = [k for k in sweep.grid if k.startswith("run.") or k == "train.resume"]
    if bad:
        raise ConfigError(f"grid key(s) {', '.join(bad)}: the sweep owns run.* and train.resume")
    return sweep


def _as_dict(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    return dict(config_mod.parse_override(o) for o in value)


def prepare_dir(sweep: Sweep) -> None:
    """Create OUT with sweep.yaml, or check that the one there describes this same sweep."""
    sweep.out.mkdir(parents=True, exist_ok=True)
    path = sweep.out / "sweep.yaml"
    manifest = sweep.manifest()
    if path.exists():
        old = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        keys = ("recipe", "grid", "seeds", "overrides", "presets", "runs")
        if {k: old.get(k) for k in keys} != {k: manifest.get(k) for k in keys}:
            raise ConfigError(f"{sweep.out} holds another sweep (its sweep.yaml differs in recipe, grid, seeds, "
                              f"overrides, presets or runs); use another --out or delete the folder")
        if old.get("search") != manifest["search"]:
            LOG.info("search settings changed since the last start: %s -> %s", old.get("search"), manifest["search"])
    _write_atomic(path, yaml.safe_dump(manifest, sort_keys=False))  # a second worker may be reading it
    _write_atomic(sweep.out / "recipe.yaml", yaml.safe_dump(sweep.recipe, sort_keys=False))
    for name, run in sweep.named.items():  # each named run's own recipe, beside the shared one
        (sweep.out / "recipes").mkdir(exist_ok=True)
        _write_atomic(sweep.out / "recipes" / f"{name}.yaml", yaml.safe_dump(run["recipe"], sort_keys=False))


def _write_atomic(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def run_sweep(sweep: Sweep, parallel: int = 1) -> dict:
    """Run the grid (skipping finished runs), then write results.csv, runs.csv and report.html."""
    from ._exec import Executor
    from .results import write_results

    if not sweep.grid and not sweep.seeds and not sweep.named:
        raise ConfigError("nothing to sweep: give --grid key=v1,v2 (two or more values) and/or --seeds N")
    specs = sweep.runs()
    prepare_dir(sweep)
    statuses = Executor(sweep.out, parallel).run_all(specs)
    return write_results(sweep, specs, statuses)
