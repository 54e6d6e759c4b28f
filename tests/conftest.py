from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TRAINLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
MNIST_DIR = SHARED / "mnist"


def needs_shared_mnist():
    return pytest.mark.skipif(not (MNIST_DIR / "train-labels-idx1-ubyte.gz").is_file(),
                              reason=f"real MNIST IDX files not found under {MNIST_DIR}")


def tiny_recipe(run_dir, **sections) -> dict:
    """A seconds-long run on real embedded MNIST digits."""
    recipe = {
        "data": {"name": "mnist5k", "test_fraction": 0.2, "valid_fraction": 0.1, "max_samples": 256,
                 "batch_size": 32},
        "model": {"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32], "dropout": 0.1}},
        "optim": {"name": "adam", "lr": 2e-3},
        "train": {"epochs": 2, "seed": 3, "deterministic": True},
        "run": {"dir": str(run_dir), "progress": False, "tensorboard": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe
