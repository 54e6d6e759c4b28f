"""trainlab sweep: grid expansion and names, bad input, skip/resume on restart, seed statistics,
and (slow) a killed sweep finishing on restart and two Optuna workers sharing one SQLite study."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from trainlab import sweep
from trainlab.sweep._exec import Executor
from trainlab.sweep.results import cell_rows
from trainlab.sweep.search import check_objective, parse_space
from trainlab.errors import ConfigError

from conftest import REPO, tiny_recipe

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


@pytest.fixture
def recipe(tmp_path):
    r = tiny_recipe(tmp_path / "unused", data={"max_samples": 128}, train={"deterministic": False})
    del r["run"]["dir"]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def test_grid_expands_into_named_runs_with_presets_and_seeds(recipe, tmp_path):
    sw = sweep.from_args(str(recipe), ["optim.name=adam,nadam,sgd", "schedule.name=constant,step,warmup_cosine",
                                       "train.epochs=1"], ["optim.lr=0.003"], seeds="2", out=tmp_path / "s")
    runs = sw.runs()
    assert len(runs) == 3 * 3 * 2 and len({r.name for r in runs}) == 18
    assert runs[0].name == "optim.name=adam,schedule.name=constant,seed=0"
    assert runs[1].name == "optim.name=adam,schedule.name=constant,seed=1" and runs[1].cell == runs[0].cell
    wc = next(r for r in runs if r.name == "optim.name=sgd,schedule.name=warmup_cosine,seed=1")
    # a preset value expands to its bundle; the fixed overrides (also a one-value --grid item) reach every run
    assert wc.overrides == {"train.epochs": 1, "optim.lr": 0.003, "optim.name": "sgd", "schedule.name": "cosine",
                            "schedule.warmup_epochs": 1, "train.seed": 1}
    assert sweep.run_name({"model.init_args.channels": [8, 16], "data.root": "a b/c"}, None) == \
        "model.init_args.channels=_8,16_,data.root=a_b_c"
    assert sweep.split_values("[8,16],[4,8]") == ["[8,16]", "[4,8]"]
    assert sweep.parse_seeds("1,5,9") == [1, 5, 9] and sweep.parse_seeds(3) == [0, 1, 2]


def test_a_sweep_file_names_its_recipe_grid_and_presets(recipe, tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text(yaml.safe_dump({"recipe": recipe.name, "grid": {"schedule.name": ["constant", "slow"]}, "seeds": 2,
                                 "presets": {"schedule.name": {"slow": {"optim.lr": 1e-4}}}}))
    sw = sweep.from_args(str(f))
    assert sw.out.as_posix() == "sweeps/grid" and [r.overrides.get("optim.lr") for r in sw.runs()] == \
        [None, None, 1e-4, 1e-4]


@pytest.mark.parametrize("items, message", [
    (["optim.nme=adam,sgd"], "did you mean 'optim.name'"),
    (["optim.name"], "not of the form key=value1,value2"),
    (["schedule.name=constant,nope"], "schedule.name"),
    (["optim.name=adam,[sgd"], "unbalanced brackets"),
    (["run.dir=a,b"], "the sweep owns run"),
])
def test_bad_grid_input_is_a_clear_error(recipe, tmp_path, items, message):
    with pytest.raises(ConfigError, match=message):
        sweep.from_args(str(recipe), items, out=tmp_path / "s").runs()


def test_bad_search_input_is_a_clear_error(recipe, tmp_path):
    sw = sweep.from_args(str(recipe), out=tmp_path / "s")
    with pytest.raises(ConfigError, match="valid.acc1"):
        check_objective(sw, "valid.accuracy")
    with pytest.raises(ConfigError, match="loguniform"):
        parse_space(["optim.lr=logunifrom(1e-4,1e-1)"])
    with pytest.raises(ConfigError, match="0 < low"):
        parse_space({"optim.lr": "loguniform(0, 1)"})
    assert parse_space(["optim.lr=loguniform(1e-4, 1e-1)", "optim.name=[adam,sgd]", "train.epochs=int(2,5)"]) == {
        "optim.lr": ("float", 1e-4, 0.1, True), "optim.name": ("categorical", ["adam", "sgd"]),
        "train.epochs": ("int", 2, 5, False)}


def test_restart_skips_finished_runs_and_resumes_the_others(recipe, tmp_path, monkeypatch):
    sw = sweep.from_args(str(recipe), ["optim.lr=0.001,0.002,0.004"], out=tmp_path / "s")
    specs = sw.runs()
    sweep.prepare_dir(sw)
    ex = Executor(sw.out, parallel=2)
    ex.run_dir(specs[0].name).mkdir(parents=True)
    (ex.run_dir(specs[0].name) / "done.json").write_text("{}")
    launched = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            launched.append(cmd)

        def wait(self):
            return 0

    monkeypatch.setattr("trainlab.sweep._exec.subprocess.Popen", FakeProc)
    monkeypatch.setattr("trainlab.sweep._exec.os.cpu_count", lambda: 4)
    ex = Executor(sw.out, parallel=2)  # 4 cores, 2 runs at a time: 2 threads each
    status = ex.run_all(specs)
    assert status == {s.name: "done" for s in specs} and len(launched) == 2
    for cmd, spec in zip(sorted(launched), specs[1:]):
        assert f"run.dir={ex.run_dir(spec.name)}" in cmd and "train.resume=auto" in cmd
        assert "train.threads=2" in cmd  # cores // parallel runs
    assert Executor(sw.out).run_all(specs) and len(launched) == 2  # all finished now: nothing launched
    other = sweep.from_args(str(recipe), ["optim.lr=0.1,0.2"], out=tmp_path / "s")
    with pytest.raises(ConfigError, match="holds another sweep"):
        sweep.prepare_dir(other)


def test_cells_aggregate_seeds_and_rank():
    rows = [{"cell": "a", "monitor": "valid.loss", "mode": "min", "finished": True, "best": b, "test": t, "test_metric": "acc1", "train_seconds": 1.0}
            for b, t in ((0.5, 0.8), (0.7, 0.9))]
    rows += [{"cell": "b", "monitor": "valid.loss", "mode": "min", "finished": True, "best": 0.4, "test": 0.7, "test_metric": "acc1"},
             {"cell": "b", "monitor": "valid.loss", "best": None}]  # an unfinished seed
    cells = cell_rows(rows, [])
    assert [c["cell"] for c in cells] == ["b", "a"]  # lower loss ranks first
    a = cells[1]
    assert a["best_mean"] == pytest.approx(0.6) and a["best_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert a["test_mean"] == pytest.approx(0.85) and (cells[0]["runs"], cells[0]["of"]) == (1, 2)


def test_a_labs_helper_run_and_another_monitor_are_never_ranked_against_the_compared_runs():
    def row(cell, monitor, mode, best):
        return {"cell": cell, "monitor": monitor, "mode": mode, "finished": True, "best": best, "test": 0.5,
                "test_metric": "acc1"}

    rows = [row("config=pretrain", "train.loss", "min", 1.96),  # a helper run, judged by its loss
            row("config=transfer", "valid.acc1", "max", 0.68), row("config=scratch", "valid.acc1", "max", 0.71),
            row("config=odd", "valid.loss", "min", 0.30)]
    cells = cell_rows(rows, [], unranked={"config=pretrain"})
    assert [(c["cell"], c["rank"]) for c in cells] == [("config=scratch", 1), ("config=transfer", 2),
                                                      ("config=pretrain", None), ("config=odd", None)]
    from trainlab.sweep.results import cell_table

    headers, table = cell_table(cells)
    assert headers[3].startswith("best valid.acc1 (%)") and table[0][3] == "71.00 ± 0.00"
    # the helper's loss is named, not shown as a percent under the column's accuracy
    assert table[2][0] == "-" and table[2][3] == "train.loss 1.96 ± 0.00" and table[3][3] == "valid.loss 0.30 ± 0.00"


def _sweep_cmd(recipe, out, *extra):
    return [sys.executable, "-m", "trainlab", "sweep", str(recipe), "--out", str(out), *extra]


@pytest.mark.slow
def test_killed_sweep_finishes_on_restart_without_redoing_runs(recipe, tmp_path):
    out = tmp_path / "s"
    cmd = _sweep_cmd(recipe, out, "--grid", "optim.lr=0.002,0.004", "train.epochs=4")
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "runs" / "optim.lr=0.004"
    deadline = time.time() + 300
    while not (second / "checkpoints" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the sweep and (PDEATHSIG) its run die mid-run
    proc.wait()
    first = out / "runs" / "optim.lr=0.002"
    assert (first / "done.json").exists() and not (second / "done.json").exists()
    first_metrics = (first / "metrics.jsonl").read_text()
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (first / "metrics.jsonl").read_text() == first_metrics  # not redone
    assert len((first / "command.txt").read_text().splitlines()) == 1
    assert "resumed from" in (second / "train.log").read_text()
    assert [r["epoch"] for r in map(json.loads, (second / "metrics.jsonl").read_text().splitlines())
            if r["split"] == "train"] == [1, 2, 3, 4]
    assert "optim.lr=0.004" in (out / "results.csv").read_text() and (out / "report.html").exists()


@pytest.mark.slow
def test_two_optuna_workers_share_one_sqlite_study(recipe, tmp_path):
    out = tmp_path / "s"
    cmd = _sweep_cmd(recipe, out, "--search", "optuna", "--trials", "3", "--space", "optim.lr=loguniform(1e-3,1e-2)",
                     "--storage", f"sqlite:///{tmp_path / 'shared.db'}", "--study", "shared")
    workers = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]  # started together: they may race on creating the study
    for w in workers:
        assert w.wait(timeout=400) == 0, w.stderr.read()[-2000:]
    import optuna

    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'shared.db'}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    # one shared count: 3 trials in all (one more if both started their last trial at once), not 3 each
    assert 3 <= len(finished) <= 4, [t.state.name for t in study.trials]
    pids = {str(w.pid) for w in workers}
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in study.trials} <= pids
    assert all((out / "runs" / f"trial-{t.number:04d}" / "done.json").exists() for t in finished)


def test_every_sweep_file_in_recipes_expands_and_validates():
    files = [p for p in sorted((REPO / "recipes").glob("*.yaml")) if sweep.is_sweep_file(p)]
    assert any(p.name == "mnist-optim-grid.yaml" for p in files)
    for p in files:
        runs = sweep.from_args(str(p)).runs()  # every run's config is loaded and validated
        assert len({r.name for r in runs}) == len(runs), p.name
    lab = sweep.from_args(str(REPO / "recipes" / "mnist-optim-grid.yaml")).runs()
    assert len(lab) == 27 and {r.overrides["schedule.warmup_epochs"] for r in lab if "warmup" in r.name} == {1}


@pytest.mark.parametrize("items, message", [
    (["optim.lr=0.1,0.1"], "the same values"),
    (["model.init_args.hidden=[[32]],[[32]]"], "the same values"),
    (["data.cache_dir=a/b,a_b"], "become the same folder name"),
])
def test_grid_points_that_share_a_run_folder_are_refused(recipe, tmp_path, items, message):
    with pytest.raises(ConfigError, match=message):
        sweep.from_args(str(recipe), items, out=tmp_path / "s").runs()


def test_a_real_grid_runs_and_a_failed_run_never_counts(recipe, tmp_path, capsys):
    """Two tiny real runs through the CLI (the default suite's end-to-end sweep); then one run's
    done.json is removed, as if it had failed after writing metrics: its cell counts 0 of 1."""
    from trainlab.cli import main
    from trainlab.sweep.results import write_results

    out = tmp_path / "s"
    assert main(["sweep", str(recipe), "--grid", "optim.lr=0.001,0.004", "--out", str(out),
                 "train.epochs=1", "data.max_samples=64"]) == 0
    text = (out / "results.csv").read_text()
    assert "optim.lr=0.001" in text and "optim.lr=0.004" in text and (out / "report.html").exists()
    (out / "runs" / "optim.lr=0.004" / "done.json").unlink()
    sw = sweep.from_args(str(out / "recipe.yaml"), ["optim.lr=0.001,0.004"], out=out)
    cells = {c["cell"]: c for c in write_results(sw, sw.runs(), {})["cells"]}
    assert (cells["optim.lr=0.001"]["runs"], cells["optim.lr=0.004"]["runs"]) == (1, 0)


def test_sigterm_stops_a_sweep_like_ctrl_c_and_it_resumes(recipe, tmp_path):
    """What a job scheduler sends before killing: the running run saves last.pt, the sweep exits
    non-zero, and started again it resumes that run instead of starting it over."""
    from _hold import HOLD

    out, held = tmp_path / "s", tmp_path / "held"
    held_recipe = tmp_path / "held.yaml"
    r = yaml.safe_load(recipe.read_text())
    r["train"]["callbacks"] = HOLD  # the first run holds at step 3 until the signal: no race with its speed
    held_recipe.write_text(yaml.safe_dump(r))
    cmd = _sweep_cmd(held_recipe, out, "--grid", "optim.lr=0.002,0.004", "train.epochs=4")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
           "TRAINLAB_TEST_HOLD": str(held)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = out / "runs" / "optim.lr=0.002"
    deadline = time.time() + 300
    while not held.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "SIGTERM" in err and "Traceback" not in err, err[-2000:]
    assert not (run / "done.json").exists()
    log = (run / "train.log").read_text()
    assert "SIGTERM: stopping after this step" in log or "SIGINT: stopping after this step" in log
    assert not (run / "metrics.jsonl").read_text().strip()  # stopped at step 3, inside epoch 1
    assert (run / "checkpoints" / "last.pt").exists()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in (run / "train.log").read_text() and (run / "done.json").exists()
