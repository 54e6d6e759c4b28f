"""``trainlab sweep ... --search optuna``: Optuna's TPE sampler and median pruner over runs.

Trials are ordinary runs (``OUT/runs/trial-0007``) in the grid's layout. The pruner sees the
objective after every epoch: this process follows the run's metrics.jsonl while it trains,
so the Trainer knows nothing of Optuna, and a pruned run is stopped with SIGINT (it saves its
last.pt like any interrupted run). The study lives in Optuna's database storage, by default
``sqlite:///OUT/study.db``; every process started with the same ``--storage`` and study name
works on the same study, which is how several workers or machines share one search.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import warnings
from pathlib import Path

from .. import config as config_mod
from .. import registry
from ..errors import ConfigError
from . import RunSpec, Sweep, prepare_dir

LOG = logging.getLogger("trainlab")
_FUNC = re.compile(r"^\s*(uniform|loguniform|int|logint)\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$")


def parse_space(space) -> dict:
    """{key: spec}: 'loguniform(1e-4, 1e-1)', 'uniform(a, b)', 'int(a, b)', 'logint(a, b)', or a
    list of choices. From CLI items 'key=spec' or a sweep file's mapping. Parsed, never eval'd."""
    items = space.items() if isinstance(space, dict) else [s.split("=", 1) if "=" in s else (s, None)
                                                           for s in (space or [])]
    out = {}
    for key, spec in items:
        if spec is None:
            raise ConfigError(f"search space item '{key}' is not of the form key=spec")
        out[key.strip()] = _parse_spec(key.strip(), spec)
    if not out:
        raise ConfigError("--search needs a space: --space optim.lr=loguniform(1e-4,1e-1) optim.name=[adam,sgd]")
    return out


def _parse_spec(key: str, spec):
    if isinstance(spec, list):
        return ("categorical", spec)
    m = _FUNC.match(str(spec))
    if m:
        kind, lo, hi = m.groups()
        num = int if kind in ("int", "logint") else float
        try:
            lo, hi = num(float(lo)), num(float(hi))
        except ValueError:
            raise ConfigError(f"search space {key}={spec}: bounds must be numbers") from None
        if not lo < hi or (kind.startswith("log") and lo <= 0):
            raise ConfigError(f"search space {key}={spec}: need 0 < low < high for log scales, low < high otherwise")
        return ("int" if num is int else "float", lo, hi, kind.startswith("log"))
    value = config_mod.parse_override(f"{key}={spec}")[1]
    if isinstance(value, list) and value:
        return ("categorical", value)
    raise ConfigError(f"search space {key}={spec!r}: use loguniform(a,b), uniform(a,b), int(a,b), logint(a,b) "
                      f"or a list of choices [a,b,c] (a fixed override right after --space's items is taken "
                      f"as one of them: write it before --space, or another option in between)")


def _suggest(trial, key: str, spec):
    if spec[0] == "categorical":
        return trial.suggest_categorical(key, spec[1])
    kind, lo, hi, log = spec
    return (trial.suggest_int if kind == "int" else trial.suggest_float)(key, lo, hi, log=log)


def check_objective(sweep: Sweep, objective: str) -> None:
    cfg = config_mod.load(sweep.recipe, sweep.overrides)
    split, _, key = objective.partition(".")
    keys = list(registry.TASKS.get(cfg.task.name).metrics)  # what the task declares it computes
    if split not in ("train", "valid") or key not in keys:
        raise ConfigError(f"--objective {objective}: not a per-epoch metric of task '{cfg.task.name}'; "
                          f"use one of {', '.join(f'{s}.{k}' for s in ('valid', 'train') for k in keys)}")


class _Watch:
    """Reports the objective after each epoch and stops the run when the pruner says so."""

    def __init__(self, trial, objective: str):
        self.trial, self.split, self.key = trial, *objective.split(".", 1)
        self.reported: set = set()

    def values(self, run_dir: Path) -> dict:
        path = run_dir / "metrics.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        recs = [json.loads(x) for x in lines if x.strip().endswith("}")]  # a line being written is skipped
        return {r["epoch"]: r[self.key] for r in recs if r.get("split") == self.split and self.key in r
                and "checkpoint" not in r}

    def __call__(self, proc, run_dir: Path):
        while proc.poll() is None:
            for epoch, value in sorted(self.values(run_dir).items()):
                if epoch not in self.reported:
                    self.reported.add(epoch)
                    self.trial.report(value, epoch)
                    if self.trial.should_prune():
                        LOG.info("trial %d pruned at epoch %d (%s %.4f)", self.trial.number, epoch,
                                 f"{self.split}.{self.key}", value)
                        proc.send_signal(2)  # SIGINT: the run saves last.pt and exits
                        proc.wait()
                        return "pruned"
            time.sleep(0.5)
        return None


def run_search(sweep: Sweep, parallel: int = 1) -> dict:
    try:
        import optuna
    except ImportError:
        raise ConfigError("--search optuna needs the optuna package: pip install optuna") from None
    # heartbeats and their retry callback are flagged experimental; they are what makes a killed
    # worker's trial come back, so the warning would only be noise on every start
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    from ._exec import Executor, stop_signals_interrupt

    s = dict(sweep.search)
    objective = s.get("objective") or config_mod.load(sweep.recipe, sweep.overrides).train.monitor
    space = parse_space(s.get("space"))
    check_objective(sweep, objective)
    for key in space:
        sweep.check({**sweep.overrides, key: _example(space[key])}, f"search space key '{key}'")
    trials = int(s.get("trials") or 20)
    prepare_dir(sweep)
    storage = s.get("storage") or f"sqlite:///{sweep.out.resolve() / 'study.db'}"
    task_name = config_mod.load(sweep.recipe, sweep.overrides).task.name
    direction = "minimize" if registry.TASKS.get(task_name).direction(objective) == "min" else "maximize"
    study = _study(optuna, storage, s.get("study") or sweep.out.name, direction)
    executor = Executor(sweep.out, parallel)
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def run_trial(trial):
        params = {k: _suggest(trial, k, spec) for k, spec in space.items()}
        # a retry of a trial whose worker died continues that trial's run (train.resume=auto)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        origin = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        name = f"trial-{trial.number if origin is None else origin:04d}"
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("run", name)
        verdict = executor.run_one(name, {**sweep.overrides, **params}, watch=_Watch(trial, objective))
        if verdict == "pruned":
            raise optuna.TrialPruned()
        values = _Watch(trial, objective).values(executor.run_dir(name)).values()
        if verdict != "done" or not values:
            raise RuntimeError(f"trial {trial.number} ({name}) {verdict}; see {executor.run_dir(name) / 'sweep.log'}")
        return (min if direction == "minimize" else max)(values)

    if len(study.get_trials(deepcopy=False, states=counted)) < trials:
        with stop_signals_interrupt():  # Ctrl-C, SIGTERM: the running trials save last.pt, then stop
            try:
                study.optimize(run_trial, n_jobs=parallel, catch=(RuntimeError,),
                               callbacks=[optuna.study.MaxTrialsCallback(trials, states=counted)])
            except KeyboardInterrupt:
                executor.stop()
                raise
    result = _write_study_results(sweep, study, executor, list(space))
    if study.get_trials(deepcopy=False, states=counted[:1]):
        LOG.info("best trial %d: %s = %.4f with %s", study.best_trial.number, objective, study.best_value,
                 study.best_trial.params)
    return result


def _write_study_results(sweep: Sweep, study, executor, keys: list) -> dict:
    """results.csv / runs.csv / report of the study's trials that have a run folder."""
    from .results import write_results

    specs, statuses = {}, {}
    for t in study.get_trials(deepcopy=False):  # in trial order: a retry replaces the trial it retried
        name = t.user_attrs.get("run", f"trial-{t.number:04d}")
        if executor.run_dir(name).is_dir():
            specs[name] = RunSpec(name, {**sweep.overrides, **t.params}, dict(t.params))
            statuses[name] = {"COMPLETE": "done", "PRUNED": "pruned"}.get(t.state.name, t.state.name.lower())
    return write_results(sweep, list(specs.values()), statuses, grid_keys=keys)


def _study(optuna, storage: str, name: str, direction: str):
    """Create or join the study; two workers starting together may race on the first schema write
    (on PostgreSQL already in RDBStorage's CREATE TYPE/TABLE), so opening the storage is retried too."""
    for attempt in range(5):
        try:
            return optuna.create_study(storage=_storage(optuna, storage), study_name=name, direction=direction,
                                       sampler=optuna.samplers.TPESampler(),
                                       pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
                                       load_if_exists=True)
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - retried, then raised
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)


def _storage(optuna, storage: str):
    if not storage.startswith(("sqlite:", "postgresql", "mysql")):
        return storage
    # heartbeats: a trial whose worker was killed is marked failed after the grace period and
    # retried (once per trial) by the next worker that starts a trial, resuming its run
    grace = _heartbeat_grace()
    try:
        return optuna.storages.RDBStorage(
            storage, heartbeat_interval=max(1, grace // 3), grace_period=grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1))
    except ImportError:  # SQLAlchemy found no driver for the URL's dialect
        raise ConfigError(_missing_driver(storage)) from None


# the pip package of each SQLAlchemy driver a storage URL may name (or get by default)
_DRIVERS = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pg8000": "pg8000",
            "mysqldb": "mysqlclient", "pymysql": "PyMySQL", "mysqlconnector": "mysql-connector-python"}


def _missing_driver(storage: str) -> str:
    """The message for a storage URL whose driver is not installed; the URL may hold a password."""
    scheme = storage.split("://")[0]
    try:  # 'postgresql://' means psycopg (3) from SQLAlchemy 2.1 on, psycopg2 before
        from sqlalchemy.engine import make_url

        driver = make_url(storage).get_dialect().driver
    except Exception:  # noqa: BLE001 - an unknown dialect: the generic advice below
        driver = None
    package = _DRIVERS.get(driver)
    extra = " (trainlab's dev extra has it)" if driver == "psycopg" else ""
    how = f"pip install {package}{extra}" if package else "install the SQLAlchemy driver it names"
    return f"--storage {scheme}://...: its database driver ({driver or scheme}) is not installed; {how}"


def _heartbeat_grace() -> int:
    """Seconds without a heartbeat before a trial counts as dead (TRAINLAB_HEARTBEAT_GRACE, default 90):
    long enough for a busy machine, short where a test or an impatient user waits on a retry."""
    raw = os.environ.get("TRAINLAB_HEARTBEAT_GRACE", "").strip()
    if not raw:
        return 90
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"TRAINLAB_HEARTBEAT_GRACE={raw!r}: must be a whole number of seconds, at least 1")
    return int(raw)


def _example(spec):
    return spec[1][0] if spec[0] == "categorical" else spec[1]
