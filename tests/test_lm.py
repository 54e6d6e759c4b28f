"""Language models: shapes, causality, state detach, overfitting, resume, eval."""

import json

import pytest
import torch

import trainlab
from trainlab.cli import main
from trainlab.config import ModelConfig, TaskConfig
from trainlab.models import build_model
from trainlab.tasks.language_model import LanguageModelTask

from conftest import TINY_CORPUS, lm_recipe

VOLATILE = {"time", "seconds", "tokens_per_s"}


def comparable(metrics):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in metrics]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TINY_CORPUS, encoding="utf-8")
    return p


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_rnn_lm_shapes_state_and_gradients(rnn_type):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="rnn_lm", init_args={"rnn_type": rnn_type, "emb_size": 16, "hidden_size": 16,
                                                          "tie_weights": True}), inferred={"vocab_size": 50})
    assert m.decoder.weight is m.embedding.weight
    x = torch.randint(0, 50, (3, 7))
    logits, state = m(x)
    assert logits.shape == (3, 7, 50) and torch.isfinite(logits).all()
    h = state[0] if rnn_type == "LSTM" else state
    assert h.shape == (2, 3, 16)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_transformer_lm_is_causal(positions):
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="transformer_lm", init_args={"d_model": 32, "num_layers": 2, "num_heads": 4,
                                                                  "ff_size": 64, "max_len": 16,
                                                                  "positions": positions}),
                    inferred={"vocab_size": 40}).eval()
    x = torch.randint(0, 40, (2, 10))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 40  # change only the future
    a, state = m(x)
    b, _ = m(y)
    assert a.shape == (2, 10, 40) and state is None
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5) and not torch.allclose(a[:, 6:], b[:, 6:])
    with pytest.raises(trainlab.ConfigError, match="max_len=16"):
        m(torch.zeros(1, 17, dtype=torch.long))


def _graph_size(t: torch.Tensor) -> int:
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        todo.extend(f for f, _ in fn.next_functions)
    return len(seen)


def test_state_is_carried_and_detached_between_windows():
    torch.manual_seed(0)
    m = build_model(ModelConfig(name="rnn_lm", init_args={"emb_size": 8, "hidden_size": 8}), inferred={"vocab_size": 20})
    task = LanguageModelTask(TaskConfig(name="language_model"), 20)
    task.start_pass(True)
    sizes = []
    for _ in range(4):
        batch = {"inputs": torch.randint(0, 20, (2, 5)), "targets": torch.randint(0, 20, (2, 5))}
        out = task.step(m, batch, train=True)
        sizes.append(_graph_size(out["loss"]))
        out["loss"].backward()  # would fail ("backward through the graph a second time") if not detached
        h, c = task._state[True]
        assert h.grad_fn is None and not h.requires_grad and h.abs().sum() > 0  # carried, cut
    assert sizes[1] == sizes[2] == sizes[3]  # no growth across windows
    task.start_pass(False)
    assert task._state[True] is not None and task._state[False] is None  # eval does not disturb train


def test_tiny_model_overfits_tiny_corpus(tiny_lm):
    train = [r for r in tiny_lm.metrics if r["split"] == "train"]
    # 20-word vocabulary: a uniform guess is ppl 20, the learned cycle of four sentences is near 1
    assert train[0]["ppl"] > 8 and train[-1]["ppl"] < 1.6, (train[0]["ppl"], train[-1]["ppl"])
    assert train[-1]["tokens_per_s"] > 0 and train[-1]["tokens"] > 0


def test_lm_resume_mid_epoch_matches_uninterrupted_run(tmp_path, corpus):
    kw = dict(train={"epochs": 2}, data={"variable_bptt": True, "bptt": 6, "batch_size": 8})
    full = trainlab.train(lm_recipe(tmp_path / "full", corpus, **kw))
    steps = len([r for r in full.metrics if r["split"] == "train"])
    per_epoch = full.metrics[0]["step"]
    stop = per_epoch + per_epoch // 2  # part-way through epoch 2: the carried hidden state matters
    trainlab.train(lm_recipe(tmp_path / "part", corpus, train={"epochs": 2, "max_steps": stop}, data=kw["data"]))
    resumed = trainlab.train(lm_recipe(tmp_path / "part", corpus, train={"epochs": 2, "resume": "auto"},
                                       data=kw["data"]))
    # the stopped run also evaluated at `stop` (logged only: best.pt moves at epoch ends); all the
    # rest, the closing test of best.pt included, must match
    got = [r for r in comparable(resumed.metrics) if r["step"] != stop]
    assert steps == 2 and got == comparable(full.metrics)
    a = torch.load(full.last_checkpoint, weights_only=True)
    b = torch.load(resumed.last_checkpoint, weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["meta"]["itos"][:2] == ["<unk>", "<eos>"] and a["meta"]["level"] == "word"


def test_eval_gives_loss_and_perplexity_of_the_final_test(tmp_path, corpus, capsys):
    run = trainlab.train(lm_recipe(tmp_path / "run", corpus))
    final = run.metrics[-1]
    out = tmp_path / "eval.json"
    assert main(["eval", str(run.best_checkpoint), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["ppl"] == pytest.approx(final["ppl"]) and result["tokens"] == final["tokens"]
    assert f"ppl {final['ppl']:.4f}" in capsys.readouterr().out


def test_summary_of_a_language_model_checkpoint_needs_no_flags(tmp_path, corpus, capsys):
    from trainlab.cli import main

    run = trainlab.train(lm_recipe(tmp_path / "run", corpus, train={"epochs": 1}))
    assert main(["summary", str(run.best_checkpoint)]) == 0
    out = capsys.readouterr().out
    bptt = run.config.data.bptt
    assert f"input [{bptt}] (batch of 1)" in out  # token ids, a bptt window, read from the checkpoint
    assert "tied to embedding" in out and "(LSTM)" in out
