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


PTB_DIR = SHARED / "ptb"
WIKITEXT2_DIR = SHARED / "wikitext-2"
SHAKESPEARE = SHARED / "tinyshakespeare" / "input.txt"


def kill_at_step(monkeypatch, step: int) -> None:
    """Trainer.train_step raises KeyboardInterrupt right after optimizer step ``step`` (a simulated kill:
    last.pt holds what the run's checkpoints held then). ``monkeypatch.undo()`` puts it back."""
    from trainlab.engine.trainer import Trainer

    original = Trainer.train_step

    def killed(self, *a, **kw):
        done = original(self, *a, **kw)
        if self.state.step == step:
            raise KeyboardInterrupt("killed")
        return done

    monkeypatch.setattr(Trainer, "train_step", killed)


def needs_shared(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"shared dataset not found: {path}")


# A tiny corpus with a learnable, repetitive structure (and non-ASCII words).
TINY_CORPUS = "".join([
    "the cat sat on the mat\n",
    "the dog ate the bone\n",
    "a café served crème brûlée\n",
    "the cat ate the fish\n",
] * 30)


def lm_recipe(run_dir, root, **sections) -> dict:
    """A seconds-long language-model run on a small corpus file or folder."""
    recipe = {
        "data": {"name": "text", "root": str(root), "batch_size": 4, "bptt": 8, "valid_fraction": 0.1,
                 "test_fraction": 0.1},
        "model": {"name": "rnn_lm", "init_args": {"emb_size": 32, "hidden_size": 32, "num_layers": 2,
                                                  "dropout": 0.1, "tie_weights": True}},
        "task": {"name": "language_model"},
        "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 2, "seed": 5, "grad_clip": 1.0, "monitor": "valid.ppl"},
        "run": {"dir": str(run_dir), "progress": False, "tensorboard": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A word-level LSTM trained to near-memorise TINY_CORPUS (shared by the LM and generation tests)."""
    import trainlab

    root = tmp_path_factory.mktemp("tiny_lm")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_CORPUS, encoding="utf-8")
    return trainlab.train(lm_recipe(root / "run", corpus, train={"epochs": 10, "monitor": "train.ppl"},
                                    data={"valid_fraction": 0.0, "test_fraction": 0.0, "bptt": 12,
                                          "batch_size": 8},
                                    optim={"lr": 2e-2}))
