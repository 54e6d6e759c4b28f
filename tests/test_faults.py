"""SIGKILL during evaluation and during a checkpoint write, a disk that fills mid-run, then resume:
nothing lost, same metrics.

Uses the fault injector of benchmarks/faults.py (which also runs more rounds and bad inputs)."""

import importlib.util

import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def faults():
    spec = importlib.util.spec_from_file_location("faults", REPO / "benchmarks" / "faults.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def reference(faults, tmp_path_factory):
    import trainlab

    return faults.strip(trainlab.train(faults.recipe(tmp_path_factory.mktemp("ref") / "run")).metrics)


@pytest.mark.parametrize("moment", ["evaluation", "checkpoint write", "disk full"])
def test_kill_at_a_bad_moment_then_resume(faults, reference, tmp_path, moment):
    o = faults.kill_and_resume(moment, 1, tmp_path, reference)
    assert o.hit, f"the run ended before reaching the {moment}"
    assert o.exit_ok and o.lost == 0, o
    assert o.same
