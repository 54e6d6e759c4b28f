"""benchmarks/gpu_check.sh: the plan, the time boxes and failures of its steps, and (slow) the
whole plan run on CPU with tiny settings (--dry-run). The GPU figures themselves need a GPU."""

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
STEPS = ["env", "cuda-tests", "speedrun-cifar10", "mnist-fp32", "mnist-bf16", "mnist-fp16", "mnist-bf16-compile",
         "cifar-fp32", "cifar-bf16", "cifar-fp16", "cifar-bf16-compile", "ddp", "bench-devices", "image-throughput"]


def _module():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _running(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _script(tmp_path, *args, timeout=60):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "work"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_plan_names_every_step_and_its_command(tmp_path):
    proc = _script(tmp_path, "--plan-only")
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert names == STEPS
    summary = (tmp_path / "out" / "gpu_check_summary.md").read_text()
    assert "| speedrun-cifar10 | planned |" in summary and "trainlab speedrun cifar10" in summary
    assert "dry run: fp16 autocast needs a GPU" in summary and "train.devices=2" in summary
    bad = _script(tmp_path, "--plan-only", "--only", "env,nope")
    assert bad.returncode == 2 and "unknown step(s) nope" in bad.stderr


def test_a_failed_or_timed_out_step_is_recorded_and_the_next_one_runs(tmp_path):
    mod = _module()
    from _gpu_check_plan import Context, Step, _regex_figures

    ctx = Context(python=sys.executable, data=tmp_path, work=tmp_path, dry=True, deadline=time.time() + 60)
    steps = [Step("fails", "exits 3", 30, [[sys.executable, "-c", "print('boom'); raise SystemExit(3)"]]),
             Step("hangs", "sleeps past its box", 3,
                  [[sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
                                          "'import time; time.sleep(600)']); open(sys.argv[1], 'w').write(str(p.pid)); "
                                          "p.wait(); print('never')", str(tmp_path / "pid")]]),
             Step("works", "prints a figure", 30, [[sys.executable, "-c", "print('ratio 2.50x')"]],
                  _regex_figures({"ratio": r"ratio ([\d.]+x)"})),
             Step("absent", "no data", 30, [["false"]], skip="no CIFAR-10 JPEG folder")]
    with open(tmp_path / "log", "w") as log:
        results = [mod.run_step(s, ctx, log) for s in steps]
    grandchild = int((tmp_path / "pid").read_text())
    for _ in range(100):  # killed with its process group, not left running (a zombie until reaped)
        if not _running(grandchild):
            break
        time.sleep(0.1)
    assert not _running(grandchild)
    assert [r.status for r in results] == ["failed", "timeout", "ok", "skipped"]
    assert "stopped after 3 s" in results[1].note and "never" not in results[1].tail
    assert results[2].figures == {"ratio": "2.50x"}
    assert results[0].note.startswith("exit code 3") and "boom" in results[0].tail
    assert results[3].note == "no CIFAR-10 JPEG folder"
    mod.write_summary(tmp_path / "s.md", results, {"mode": "test"})
    text = (tmp_path / "s.md").read_text()
    assert "| fails | failed |" in text and "| hangs | timeout |" in text and "| absent | skipped |" in text


@pytest.mark.slow
def test_the_dry_run_runs_every_step_on_cpu(tmp_path):
    proc = _script(tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "out" / "gpu_check_summary.md").read_text()
    for name in STEPS:
        status = "skipped" if name.endswith("fp16") else "ok"
        assert f"| {name} | {status} |" in summary, name
    assert "samples/s" in summary and "ratio" in summary and "first step s (compile)" in summary


@pytest.mark.slow
def test_the_setup_makes_a_venv_that_sees_this_pythons_torch_and_this_checkout(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run(["bash", str(SCRIPT), "--setup", "venv", "--venv", str(venv), "--dry-run", "--plan-only",
                           "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and f"venv {venv} ready" in proc.stdout, proc.stdout + proc.stderr
    check = subprocess.run([str(venv / "bin" / "trainlab"), "list", "models"], capture_output=True, text=True,
                           timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert check.returncode == 0 and "speednet" in check.stdout, check.stderr
    assert f"{venv}/bin/python -c import torch" in proc.stdout  # the plan runs in the venv
