"""(slow) Two Optuna workers share one study on a real PostgreSQL server; one is killed mid-trial.

The server is a throwaway one (tests/pg_server.py). Worker A is SIGKILLed, with its training
process (its process group), while one of its trials is running; worker B carries on alone.
With TRAINLAB_HEARTBEAT_GRACE=5 B marks A's trial failed once its heartbeat is 5 s old (B looks
when it starts a trial), retries it in the same run folder (resuming from its last.pt, unless the
pruner stops the retry at once on the epochs the killed run had reported), and finishes the
study: every trial is accounted for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
import yaml

import pg_server
from conftest import REPO, tiny_recipe

GRACE = 5  # seconds; heartbeats every GRACE // 3 = 1 s
TRIALS = 4
EPOCHS = 10  # ~0.1 s an epoch: a window of about a second between last.pt and the run's end
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TRAINLAB_HEARTBEAT_GRACE": str(GRACE)}


@pytest.fixture
def pg_url():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install 'psycopg[binary]' "
                                          "(trainlab's dev extra)")
    try:
        with pg_server.running() as url:
            yield url
    except pg_server.Unavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")


def _train_epochs(run_dir) -> list[int]:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r["epoch"] for r in map(json.loads, (x for x in lines if x.strip().endswith("}")))
            if r.get("split") == "train" and "checkpoint" not in r]


def _logs(tmp_path) -> str:
    return "\n".join(f"--- {p.name}:\n{p.read_text()[-2000:]}" for p in sorted(tmp_path.glob("worker-*.log")))


def _wait(condition, what: str, workers, tmp_path, timeout: float = 180):
    """Poll a condition on files or the study (no fixed sleeps); fail with the workers' logs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        if any(w.poll() is not None for w in workers):
            pytest.fail(f"a worker exited while waiting for {what}\n{_logs(tmp_path)}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{_logs(tmp_path)}")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats and retries
def test_killed_worker_trial_is_failed_retried_and_the_study_completes(pg_url, tmp_path):
    import optuna

    recipe = tiny_recipe(tmp_path / "unused", data={"max_samples": 512},
                         train={"epochs": EPOCHS, "deterministic": False})
    del recipe["run"]["dir"]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "trainlab", "sweep", str(tmp_path / "tiny.yaml"), "--out", str(out),
           "--search", "optuna", "--trials", str(TRIALS), "--space", "optim.lr=loguniform(1e-3,1e-2)",
           "--storage", pg_url, "--study", "shared"]
    logs = [open(tmp_path / f"worker-{n}.log", "w") for n in "ab"]
    # own process groups: a SIGKILL of the group takes the worker's training process with it
    a, b = [subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            for log in logs]
    try:
        # a trial's last.pt means the study, its schema and trials exist: safe to open it from here
        _wait(lambda: list((out / "runs").glob("trial-*/checkpoints/last.pt")), "a first checkpoint", [a, b], tmp_path)
        study = optuna.load_study(study_name="shared", storage=pg_url)

        def a_running_with_checkpoint():
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                run = t.user_attrs.get("run")
                if t.user_attrs.get("worker", "").endswith(f":{a.pid}") and run and \
                        (out / "runs" / run / "checkpoints" / "last.pt").exists():
                    return t
            return None

        killed = _wait(a_running_with_checkpoint, "worker A's trial to checkpoint", [a, b], tmp_path)
        os.killpg(a.pid, signal.SIGKILL)
        kill_time = datetime.now()
        a.wait()
        run_dir = out / "runs" / killed.user_attrs["run"]
        epochs_at_kill = _train_epochs(run_dir)
        assert not (run_dir / "done.json").exists() and len(epochs_at_kill) < EPOCHS, "killed after its run ended"

        assert b.wait(timeout=300) == 0, _logs(tmp_path)
    finally:
        for w in (a, b):
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
        for log in logs:
            log.close()

    trials = study.get_trials(deepcopy=False)
    states = {t.number: t.state.name for t in trials}
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == TRIALS, states  # B alone after the kill: no overshoot
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")], states

    dead = next(t for t in trials if t.number == killed.number)
    assert dead.state.name == "FAIL", states
    # failed only once its last heartbeat (at most 1 s before the kill) was GRACE seconds old
    assert dead.datetime_complete >= kill_time + timedelta(seconds=GRACE - 1.5), (dead.datetime_complete, kill_time)
    retries = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
               == killed.number]
    assert len(retries) == 1 and retries[0] in counted, states
    retry = retries[0]
    assert retry.params == dead.params and retry.user_attrs["run"] == killed.user_attrs["run"]
    assert retry.user_attrs["worker"].endswith(f":{b.pid}")

    # the retry continued the killed run, each epoch once: a complete one resumed from its last.pt;
    # a pruned one may also have been pruned at once on the killed run's epochs (reported again)
    train_log, train_epochs = (run_dir / "train.log").read_text(), _train_epochs(run_dir)
    assert train_epochs[:len(epochs_at_kill)] == epochs_at_kill
    assert train_epochs == list(range(1, len(train_epochs) + 1))
    if retry.state.name == "COMPLETE":
        assert "resumed from" in train_log and len(train_epochs) == EPOCHS, train_log[-1500:]
    else:
        assert "resumed from" in train_log or train_epochs == epochs_at_kill, train_log[-1500:]
    for t in counted:
        assert json.loads((out / "runs" / t.user_attrs["run"] / "done.json").read_text())["status"] in \
            ("done", "pruned"), t.number
    assert (out / "results.csv").exists()
