"""Running a sweep's runs: one ``python -m trainlab train`` process each, N at a time.

Each run gets ``train.threads = cores // N`` so parallel runs do not fight over cores, and
``train.resume=auto`` so a run cut off by a killed sweep continues from its ``last.pt``.
``done.json`` marks a finished run. On Linux the children die with the sweep (PDEATHSIG),
so a killed sweep never leaves a run writing into a folder that a restart is about to use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import yaml

from .. import atomic

LOG = logging.getLogger("trainlab")
DONE = "done.json"


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).is_file()


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a killed sweep may leave its runs finishing alone
        pass


def train_command(recipe: Path, run_dir: Path, overrides: dict, threads: int) -> list[str]:
    items = {**overrides, "run.dir": str(run_dir), "train.resume": "auto", "run.progress": False}
    items.setdefault("train.threads", threads)
    args = [f"{k}={_yaml_scalar(v)}" for k, v in items.items()]
    return [sys.executable, "-m", "trainlab", "train", str(recipe), *args]


def _yaml_scalar(v) -> str:
    return v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


class Executor:
    def __init__(self, out: Path, parallel: int = 1):
        self.out, self.parallel = Path(out), max(1, parallel)
        self.threads = max(1, (os.cpu_count() or 1) // self.parallel)
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def run_all(self, specs: list) -> dict:
        """{name: 'done' | 'skipped (finished)' | 'failed (...)' | 'interrupted'}. Runs that use
        another run's checkpoint (a lab's ``after``) start once that run is done."""
        todo = [s for s in specs if not is_finished(self.run_dir(s.name))]
        status = {s.name: "done" for s in specs if s not in todo}
        LOG.info("sweep %s: %d run(s), %d finished already, %d to run, %d at a time, %d thread(s) each",
                 self.out, len(specs), len(specs) - len(todo), len(todo), self.parallel, self.threads)
        with ThreadPoolExecutor(self.parallel) as pool, stop_signals_interrupt():
            try:
                while todo:
                    ready = [s for s in todo if all(status.get(a) == "done" for a in s.after)]
                    blocked = [s for s in todo if any(status.get(a, "done") != "done" for a in s.after)
                               and all(a in status for a in s.after)]
                    for s in blocked:  # what it needs failed: it cannot start
                        status[s.name] = f"not started ({', '.join(a for a in s.after if status[a] != 'done')} " \
                                         f"did not finish)"
                    if not ready:
                        break
                    for spec, result in zip(ready, pool.map(self._start, ready)):
                        status[spec.name] = result
                    todo = [s for s in todo if s.name not in status]
            except KeyboardInterrupt:
                self.stop()
                raise
        return status

    def _start(self, spec) -> str:
        recipe = self.out / "recipes" / f"{spec.labels['config']}.yaml" if spec.recipe is not None else None
        return self.run_one(spec.name, spec.overrides, recipe=recipe)

    def run_one(self, name: str, overrides: dict, watch: Optional[Callable] = None,
                recipe: Optional[Path] = None) -> str:
        """Run one training process to its end; ``watch(proc, run_dir)`` polls it (Optuna pruning)."""
        if self._stopping:
            return "interrupted"
        run_dir = self.run_dir(name)
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = train_command(recipe or self.out / "recipe.yaml", run_dir, overrides, self.threads)
        started = time.time()
        with open(run_dir / "sweep.log", "a", encoding="utf-8") as log:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_src(), os.environ.get("PYTHONPATH")]))}
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_die_with_parent if os.name == "posix" else None)
            with self._lock:
                self._procs[name] = proc
            LOG.info("run %s: started", name)
            verdict = watch(proc, run_dir) if watch is not None else None
            code = proc.wait()
            with self._lock:
                self._procs.pop(name, None)
        if verdict:  # stopped on purpose (a pruned trial): finished as far as the sweep is concerned
            _write_done(run_dir, verdict, started)
            return verdict
        if code == 0:
            _write_done(run_dir, "done", started)
            LOG.info("run %s: done in %.0f s", name, time.time() - started)
            return "done"
        why = "interrupted" if self._stopping or code in (130, -signal.SIGINT) else f"failed (exit {code})"
        LOG.warning("run %s: %s; its log: %s", name, why, run_dir / "sweep.log")
        return why

    def stop(self) -> None:
        """Ctrl-C: each run saves a resumable last.pt and exits (its own SIGINT handling)."""
        self._stopping = True
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


@contextlib.contextmanager
def stop_signals_interrupt():
    """SIGTERM and SIGUSR1 (what Slurm and Kubernetes send before a kill) stop a sweep like Ctrl-C:
    each run saves a resumable last.pt, instead of the sweep dying and its runs with it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"{signal.Signals(signum).name}: sweep stopped; start it again to resume")

    previous = {}
    for name in ("SIGTERM", "SIGUSR1"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_done(run_dir: Path, status: str, started: float) -> None:
    atomic.write_text(run_dir / DONE, json.dumps({"status": status, "seconds": round(time.time() - started, 1)}))


def _src() -> str:
    """The folder holding this trainlab package, so child processes import this same code."""
    return str(Path(__file__).resolve().parents[2])
