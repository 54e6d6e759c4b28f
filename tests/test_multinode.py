"""Two nodes on one machine: two torchrun launchers joined by a c10d rendezvous on 127.0.0.1
(gloo), as docs/sweeps-and-scale.md's "Several machines" starts them on two hosts. The result
equals one process within the DDP test's tolerance; a node that dies stops the other with a
clear message instead of a hang, and train.resume=auto on both nodes completes the run."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

import trainlab
from trainlab.tracking import read_metrics

from conftest import REPO, tiny_recipe

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
COMMON = dict(data={"max_samples": 301, "batch_size": 32},
              model={"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32], "dropout": 0.0,
                                                     "batch_norm": False}},
              optim={"name": "sgd", "lr": 0.05}, train={"epochs": 4, "seed": 3, "device": "cpu", "threads": 1})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(recipe, rdzv_id, *overrides):
    """The two launchers' commands: the same on both nodes, as on two hosts."""
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-id", rdzv_id, "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
           "--max-restarts", "0", "-m", "trainlab", "train", str(recipe), *overrides]
    return [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True) for _ in range(2)]


def _finish(procs, timeout=300):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [p.returncode for p in procs], outs


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                ppid = int(open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _curves(run_dir):
    keep = ("epoch", "split", "loss", "acc1", "samples", "lr", "step")
    return [{k: r.get(k) for k in keep} for r in read_metrics(run_dir)]


def _assert_close(a_run, b_run):
    a, b = _curves(a_run), _curves(b_run)
    assert [(r["epoch"], r["split"], r["samples"]) for r in a] == [(r["epoch"], r["split"], r["samples"]) for r in b]
    for x, y in zip(a, b):  # the tolerance of tests/test_distributed.py
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4, abs=1e-5), (x, y)
        assert x["acc1"] == pytest.approx(y["acc1"], abs=1 / 301 + 1e-9), (x, y)


@pytest.mark.slow
def test_two_nodes_match_one_process_and_a_dead_node_stops_the_other(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "two", **COMMON)))
    codes, outs = _finish(_nodes(recipe, "whole"))
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outs)
    one = trainlab.train(tiny_recipe(tmp_path / "one", **COMMON))
    _assert_close(tmp_path / "two", one.dir)

    # the same run again, and one node dies (SIGKILL: a host lost) once a checkpoint exists
    killed = tmp_path / "killed"
    args = [f"run.dir={killed}", "train.checkpoint_every_steps=2"]
    procs = _nodes(recipe, "killed", *args)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    for pid in _tree(procs[1].pid):  # the node's launcher and its worker: a host lost
        os.kill(pid, signal.SIGKILL)
    out = procs[0].communicate(timeout=240)[0]  # a hang would end the test here
    procs[1].communicate()
    assert procs[0].returncode != 0, out[-3000:]
    assert "error: another process of this distributed run stopped or cannot be reached" in out, out[-5000:]
    assert "last checkpoint: " in out and "on every node again with train.resume=auto" in out
    assert not (killed / "eval_test.json").exists(), "finished before it was killed"
    codes, outs = _finish(_nodes(recipe, "resumed", *args, "train.resume=auto"))
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert "resumed from" in (killed / "train.log").read_text()
    _assert_close(killed, one.dir)
