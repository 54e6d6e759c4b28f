"""trainlab bench devices: CPU alone (and says so) without a GPU; speedup and efficiency arithmetic."""

import pytest
import torch
import yaml

from trainlab.sweep.devices import NO_GPU, _derive, format_table
from trainlab.cli import main

from conftest import tiny_recipe


def test_bench_devices_on_this_machine(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "unused", data={"max_samples": 128})))
    assert main(["bench", "devices", str(recipe), "--steps", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("CPU", "NVIDIA", "Tesla")) or "GPU" in line]
    assert "CPU (" in out and "ms/step" in out and "data wait" in out
    if torch.cuda.device_count() == 0:
        assert out.splitlines()[0] == NO_GPU and len([r for r in rows if r.startswith("CPU")]) == 1
    else:
        assert NO_GPU not in out and len(out.splitlines()) == 2 + torch.cuda.device_count()


def test_speedup_and_scaling_efficiency():
    rows = [{"device": "cpu", "name": "CPU", "processes": 1, "step_s": 1.0, "wait_share": 0.1, "steps_per_epoch": 10,
             "batch": 100},
            {"device": "cuda", "name": "GPU", "processes": 1, "step_s": 0.1, "wait_share": 0.5, "steps_per_epoch": 10,
             "batch": 100},
            {"device": "cuda", "name": "GPU", "processes": 4, "step_s": 0.04, "wait_share": 0.2, "steps_per_epoch": 10,
             "batch": 100}]
    cpu, one, four = _derive(rows)
    assert (one["speedup"], four["speedup"]) == pytest.approx((10, 25))
    assert one["efficiency"] == pytest.approx(1.0) and four["efficiency"] == pytest.approx(0.625)
    assert four["samples_per_s"] == pytest.approx(2500) and cpu["epoch_s"] == pytest.approx(10)
    assert "62%" in format_table(rows, []) and "efficiency" not in cpu


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 1, reason="no GPU on this machine: the GPU rows need CUDA")
def test_bench_has_a_row_per_gpu_count(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "unused", train={"deterministic": False})))
    assert main(["bench", "devices", str(recipe), "--steps", "5"]) == 0
    assert "failed" not in capsys.readouterr().out


def test_bench_devices_applies_the_runs_threads_and_allocator_setting(tmp_path, monkeypatch):
    """It measures what `trainlab train` runs: the same runtime setup (threads, keep_freed_memory)."""
    from trainlab import config
    from trainlab.engine import device as device_mod
    from trainlab.sweep.devices import measure

    applied = []
    monkeypatch.setattr(device_mod, "keep_freed_memory", lambda: applied.append(True) or True)
    before = torch.get_num_threads()
    try:
        cfg = config.load(tiny_recipe(tmp_path / "unused", data={"max_samples": 128}, train={"threads": 1}))
        row = measure(cfg, steps=2, warmup=1)
        assert row["name"] == "CPU (1 threads)" and torch.get_num_threads() == 1 and applied == [True]
        cfg = config.load(tiny_recipe(tmp_path / "unused", data={"max_samples": 128},
                                      train={"threads": 1, "keep_freed_memory": False}))
        measure(cfg, steps=1, warmup=0)
        assert applied == [True]  # false: malloc left alone
    finally:
        torch.set_num_threads(before)
