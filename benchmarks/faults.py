"""Inject faults into real trainlab runs and print one summary.

Six fault kinds, each on a real training process (CPU, fixed seed): SIGKILL during a training
step, during evaluation and while a checkpoint is being written; SIGINT (Ctrl-C) and SIGTERM
(``kill PID``), which must save a resumable last.pt and exit 130; and a full disk, made by
lowering the running process's RLIMIT_FSIZE to 0 (prlimit: every write to a file then fails with
EFBIG, as writes fail with ENOSPC on a full disk, with no root and nothing outside that process),
which must stop the run with one ``error:`` line. Each run is resumed with ``train.resume=auto``
and its metrics compared with an uninterrupted run's. Then bad inputs (benchmarks/_fault_*.py),
each classified clear, unclear or wrong. Files lost: a checkpoint that exists but does not load,
a metrics.jsonl that does not parse, a user's file changed or gone.

    python benchmarks/faults.py [--rounds 1] [--keep DIR] [--faults KIND,...] [--cases TEXT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import trainlab  # noqa: E402
from trainlab.engine.checkpoint import load_checkpoint  # noqa: E402
from trainlab.errors import TrainlabError  # noqa: E402
from trainlab.tracking import read_metrics  # noqa: E402

VOLATILE = {"time", "seconds", "samples_per_s", "tokens_per_s"}
# a model large enough (about 9M parameters + Adam state) that writing last.pt takes a while
RECIPE = {
    "data": {"name": "mnist5k", "test_fraction": 0.2, "valid_fraction": 0.3, "max_samples": 1200,
             "batch_size": 64},
    "model": {"name": "mlp", "init_args": {"widths": [2048, 2048], "dropout": 0.2}},
    "optim": {"name": "adam", "lr": 1e-3},
    "train": {"epochs": 3, "seed": 1, "checkpoint_every_steps": 4},
    "run": {"progress": False, "tensorboard": False},
}


def recipe(run_dir: Path, **train) -> dict:
    r = json.loads(json.dumps(RECIPE))
    r["run"]["dir"] = str(run_dir)
    r["train"].update(train)
    return r


def strip(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def start(run_dir: Path, workdir: Path) -> subprocess.Popen:
    path = workdir / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(recipe(run_dir)))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    # SIGXFSZ ignored (Python does so too): a write past RLIMIT_FSIZE fails with EFBIG, as on a full disk
    return subprocess.Popen([sys.executable, "-m", "trainlab", "train", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN))


def wait_until(cond, proc, timeout=300.0, poll=0.001) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(poll)
    return False


def moment(kind: str, run_dir: Path, n: int):
    """A condition that is true at the moment to strike."""
    ck, metrics = run_dir / "checkpoints", run_dir / "metrics.jsonl"
    if kind == "checkpoint write":  # the temporary file exists: torch.save is writing
        return lambda: ck.is_dir() and any(p.name.startswith(".last.pt.") for p in ck.iterdir())
    if kind == "evaluation":  # a train record was just written: the valid pass is running
        return lambda: metrics.exists() and sum(1 for ln in metrics.read_text().splitlines()
                                                if '"split": "train"' in ln) >= n
    # some training step: the first checkpoint (step 4 of 36) exists; later rounds strike later.
    # Round 1, the one the tests use, waits on the file alone, so it cannot race a fast machine.
    t0 = time.time()
    return lambda: ck.joinpath("last.pt").exists() and (n == 1 or time.time() - t0 > 0.2 * n)


def files_lost(run_dir: Path) -> int:
    lost = 0
    for p in (run_dir / "checkpoints").glob("*.pt"):
        try:
            load_checkpoint(p)
        except TrainlabError:
            lost += 1
    try:
        read_metrics(run_dir)
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
        lost += 1
    return lost


# kind -> (what is done to the process, the moment it is done at, what its exit must look like)
FAULTS = {
    "training step": ("SIGKILL", "training step", None),
    "evaluation": ("SIGKILL", "evaluation", None),
    "checkpoint write": ("SIGKILL", "checkpoint write", None),
    "ctrl-c": ("SIGINT", "training step", "SIGINT: stopping after this step"),
    "sigterm": ("SIGTERM", "training step", "SIGTERM: stopping after this step"),
    "disk full": ("RLIMIT_FSIZE", "training step", "error: "),
}


class Outcome(NamedTuple):  # not a dataclass: tests load this file without registering it as a module
    hit: bool  # the fault came at the moment it was meant for
    exit_ok: bool  # a stop signal exits 130 and a full disk non-zero, each without a traceback
    same: bool  # the resumed run's metrics equal the uninterrupted run's
    lost: int  # files that exist but do not load or parse
    note: str = ""


def strike(proc: subprocess.Popen, how: str) -> None:
    """Disk full: every write to a regular file from now on fails (RLIMIT_FSIZE of 0 bytes set on
    the running process: the kernel refuses each write with EFBIG, as it refuses them with ENOSPC
    on a full disk; no root, no filesystem of its own, nothing outside the one process)."""
    if how == "RLIMIT_FSIZE":
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, 0))
    else:
        proc.send_signal(getattr(signal, how))


def kill_and_resume(kind: str, n: int, work: Path, reference: list) -> Outcome:
    how, when, expected = FAULTS[kind]
    run_dir = work / f"{kind.replace(' ', '-')}-{n}"
    proc = start(run_dir, work)
    hit = wait_until(moment(when, run_dir, n), proc)
    strike(proc, how)
    _, err = proc.communicate()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if expected is None:
        exit_ok, note = proc.returncode == -signal.SIGKILL, ""
    else:
        code_ok = proc.returncode == 130 if how.startswith("SIG") else proc.returncode not in (0, None)
        said = [ln for ln in lines if expected in ln or ln.startswith("error: ")]
        exit_ok = code_ok and bool(said) and "Traceback" not in err
        note = f"exit {proc.returncode}: {(said or lines or [''])[-1][:110]}"
    lost = files_lost(run_dir)
    resumed = trainlab.train(recipe(run_dir, resume="auto"))
    same = strip(read_metrics(resumed.dir)) == reference
    return Outcome(hit, exit_ok, same, lost + files_lost(run_dir), note)


def bad_input_cases(work: Path, only: str = "") -> list:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the case modules beside this file
    from _fault_cases import bad_input_cases as cases

    return cases(work / "bad-inputs", recipe(work / "bad-inputs" / "bad"), only)


def run_faults(kinds, rounds: int, work: Path) -> tuple[list[Outcome], int]:
    reference = strip(trainlab.train(recipe(work / "uninterrupted")).metrics)
    rows = []
    for kind in kinds:
        for n in range(1, rounds + 1):
            o = kill_and_resume(kind, n, work, reference)
            rows.append(o)
            print(f"{FAULTS[kind][0]:12s} during {kind:16s} round {n}: {'hit' if o.hit else 'MISSED the moment'}; "
                  f"exit {'as expected' if o.exit_ok else 'WRONG'}; resumed identical: {o.same}; "
                  f"files lost: {o.lost}{'; ' + o.note if o.note else ''}", flush=True)
    return rows, sum(o.lost for o in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1, help="faults of each kind")
    ap.add_argument("--keep", help="keep the run folders here")
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma-separated fault kinds ('' for none)")
    ap.add_argument("--cases", default="", help="only bad inputs whose name contains this")
    ap.add_argument("--no-bad-inputs", action="store_true")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="trainlab-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    kinds = [k for k in args.faults.split(",") if k]
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        ap.error(f"unknown fault kinds {unknown}; have {', '.join(FAULTS)}")
    rows, lost = run_faults(kinds, args.rounds, work) if kinds else ([], 0)
    cases = [] if args.no_bad_inputs else bad_input_cases(work, args.cases)
    for c in cases:
        print(f"bad input {c.name:44s} {c.verdict.upper() if c.verdict != 'clear' else c.verdict}"
              f"{' (files lost: %d)' % c.lost if c.lost else ''}: {c.message}")
    lost += sum(c.lost for c in cases)
    count = {v: sum(c.verdict == v for c in cases) for v in ("clear", "unclear", "wrong")}
    good = sum(o.hit and o.exit_ok and o.same for o in rows)
    print(f"\nfaults tried: {len(kinds)} kinds x {args.rounds} rounds; resumed identical: "
          f"{sum(o.same for o in rows)}/{len(rows)} (hit the moment and exited as expected: {good}/{len(rows)}); "
          f"bad inputs: {len(cases)} (clear {count['clear']}, unclear {count['unclear']}, wrong {count['wrong']}); "
          f"files lost: {lost}")
    ok = lost == 0 and good == len(rows) and count["unclear"] == count["wrong"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
