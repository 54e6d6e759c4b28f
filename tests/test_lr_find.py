"""The LR range test runs through the real Trainer step and changes nothing of the run."""

from __future__ import annotations

import torch
from conftest import tiny_recipe


def _trainer(tmp_path):
    from trainlab import config as config_mod
    from trainlab.build import build_parts, build_trainer
    from trainlab.engine.runtime import setup_runtime

    cfg = config_mod.load(tiny_recipe(tmp_path / "run", data={"max_samples": 512}))
    device = setup_runtime(cfg, distributed_ok=False)
    torch.manual_seed(cfg.train.seed)
    return build_trainer(build_parts(cfg, device))


def _one_step(trainer):
    batch = next(iter(trainer.loaders["train"].iterate(0)))
    trainer.train_step(batch, trainer.task.meter(), True)


def test_range_test_leaves_model_optimizer_rng_and_counters_unchanged(tmp_path):
    from trainlab.engine.lr_find import lr_range_test

    a, b = _trainer(tmp_path / "a"), _trainer(tmp_path / "b")
    for t in (a, b):  # one step each (the same dropout masks): Adam has moments to keep
        torch.manual_seed(5)
        _one_step(t)
    torch.manual_seed(123)
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    opt_before = a.optimizer.state_dict()
    moments = {k: {n: t.clone() for n, t in s.items()} for k, s in opt_before["state"].items()}
    lr, rng, step = a.optimizer.param_groups[0]["lr"], torch.get_rng_state(), a.state.step
    result = lr_range_test(a, steps=40)
    assert len(result.lrs) > 10 and result.suggestion is not None and 1e-7 <= result.suggestion <= 10
    assert all(torch.equal(before[k], v) for k, v in a.model.state_dict().items())  # BN statistics too
    after = a.optimizer.state_dict()["state"]
    assert all(torch.equal(moments[k][n], after[k][n]) for k in moments for n in moments[k])
    assert a.optimizer.param_groups[0]["lr"] == lr and a.state.step == step
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(7)
    _one_step(a)
    torch.manual_seed(7)
    _one_step(b)  # the run goes on exactly as one that never ran the test
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_lr_find_cli_prints_a_suggestion_and_writes_the_plot(tmp_path, capsys):
    import yaml

    from trainlab.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "run")))
    out = tmp_path / "lr.png"
    assert main(["lr-find", str(recipe), "data.max_samples=512", "--steps", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "suggested optim.lr=" in text and out.stat().st_size > 10_000
    assert not (tmp_path / "run").exists()  # nothing of a run is written
    assert main(["lr-find", str(recipe), "--out", str(out)]) == 2
    assert main(["lr-find", str(recipe), "--start", "1", "--end", "0.1", "--out", str(tmp_path / "x.png")]) == 2


def test_attention_models_get_a_warning():
    from torch import nn

    from trainlab.engine.lr_find import transformer_warning

    assert "Transformers" in transformer_warning(nn.TransformerEncoderLayer(8, 2))
    assert transformer_warning(nn.Linear(2, 2)) == ""


def test_optim_lr_find_trains_with_the_suggestion_and_records_it(tmp_path):
    import json

    import yaml

    import trainlab

    run = trainlab.train(tiny_recipe(tmp_path / "run", data={"max_samples": 128}, optim={"lr": "find"},
                                     train={"epochs": 1}))
    found = json.loads((run.dir / "lr_find.json").read_text())
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())["optim"]["lr"]
    assert saved == float(f"{found['suggestion']:.3g}") and (run.dir / "lr_find.png").stat().st_size > 10_000
    assert "optim.lr=find ->" in (run.dir / "command.txt").read_text()
    again = trainlab.train(tiny_recipe(tmp_path / "run2", data={"max_samples": 128}, optim={"lr": saved},
                                       train={"epochs": 1}))
    assert again.test["acc1"] == run.test["acc1"]  # the range test left nothing behind: the same run
