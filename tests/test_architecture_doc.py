"""docs/architecture.md's examples (a task, a callback, a model, a dataset) run as written."""

from __future__ import annotations

import re

import trainlab
from conftest import REPO


def test_the_architecture_examples_run_together(tmp_path):
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        code = "\n".join(line for line in block.splitlines() if not line.startswith(("From Python", "trainlab.train(")))
        exec(compile(code, "docs/architecture.md", "exec"), namespace)  # noqa: S102 - our own docs
    run = trainlab.train({
        "data": {"name": "noise", "valid_fraction": 0.25, "batch_size": 64},
        "model": {"name": "tiny_mlp", "init_args": {"width": 16}},
        "task": {"name": "error_rate"},
        "train": {"epochs": 2, "monitor": "valid.err", "callbacks": [{"name": "grad_norm", "every": 2}]},
        "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})
    assert {"err", "loss"} <= set(run.test) and run.best_checkpoint.exists()
    import torch

    saved = torch.load(run.last_checkpoint, weights_only=True)["callbacks"]
    assert len(saved["grad_norm"]["history"]) == 6  # 12 steps (384 training images / 64 x 2 epochs), every 2nd
