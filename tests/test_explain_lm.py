"""trainlab explain for language models: surprisal per token, and a Transformer's attention maps."""

from __future__ import annotations

import json
import math

import torch


def test_attention_maps_are_the_weights_scaled_dot_product_attention_uses():
    from trainlab.inference.explain_lm import attention_maps
    from trainlab.models.transformer_lm import TransformerLM

    torch.manual_seed(0)
    m = TransformerLM(vocab_size=30, d_model=16, num_layers=2, num_heads=2, ff_size=32, dropout=0.0).eval()
    ids = torch.randint(0, 30, (7,))
    att = attention_maps(m, ids)
    assert tuple(att.shape) == (2, 2, 7, 7)
    assert torch.allclose(att.sum(-1), torch.ones(2, 2, 7), atol=1e-5)
    assert float(att.triu(1).abs().max()) == 0  # causal: no token looks ahead
    block, x = m.blocks[0], m.embedding(ids.view(1, -1)) + m.pos[:7]
    q, k, v = block.attn.qkv(block.ln1(x)).view(1, 7, 3, 2, 8).permute(2, 0, 3, 1, 4)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)[0]
    assert torch.allclose(att[0] @ v[0], want, atol=1e-5)


def test_explain_a_language_model_prompt(tiny_lm, tmp_path, capsys):
    from trainlab.cli import main
    from trainlab.inference.explain_lm import surprisal

    out = tmp_path / "lm"
    assert main(["explain", str(tiny_lm.best_checkpoint), "--prompt", "the cat sat on the", "--out", str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["tokens"] == ["the", "cat", "sat", "on", "the"] and index["surprisal_bits"][0] is None
    assert all(b >= 0 for b in index["surprisal_bits"][1:]) and index["attention"] is None  # an LSTM
    assert (out / "surprisal.png").is_file() and "surprisal" in (out / "index.html").read_text()
    import trainlab

    model = trainlab.load(tiny_lm.best_checkpoint)
    ids = torch.tensor([model.trainlab_meta["itos"].index(t) for t in index["tokens"]])
    with torch.no_grad():
        logits, _ = model(ids.view(1, -1))
    p = logits[0, 0].softmax(-1)[ids[1]]
    assert surprisal(model, ids)[1] == pytest_approx(-math.log2(float(p)))
    assert main(["explain", str(tiny_lm.best_checkpoint), "--split", "test", "--out", str(tmp_path / "x")]) == 2
    assert "--prompt TEXT" in capsys.readouterr().err


def pytest_approx(v):
    import pytest

    return pytest.approx(v, rel=1e-4)


def test_a_language_model_run_keeps_per_token_losses_and_the_report_shows_them(tmp_path):
    import pytest

    import trainlab
    from conftest import TINY_CORPUS, lm_recipe
    from trainlab.analysis.report import write_report

    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TINY_CORPUS, encoding="utf-8")
    run = trainlab.train(lm_recipe(tmp_path / "run", corpus, train={"epochs": 1}))
    data = json.loads((run.dir / "token_losses.json").read_text())
    ev = json.loads((run.dir / "eval_test.json").read_text())
    assert sum(b["tokens"] for b in data["buckets"]) == data["tokens"] == ev["tokens"]
    mean_nats = sum(b["tokens"] * math.log(b["ppl"]) for b in data["buckets"]) / data["tokens"]
    assert mean_nats == pytest.approx(ev["loss"], rel=1e-4)  # the buckets split the test loss exactly
    assert data["passage"] and all(b >= 0 for _, b in data["passage"])
    from trainlab.cli import main

    assert main(["eval", str(run.best_checkpoint), "--out", str(tmp_path / "e.json")]) == 0
    again = json.loads((tmp_path / "token_losses.json").read_text())  # trainlab eval writes the same summary
    assert again["tokens"] == data["tokens"] and [w["word"] for w in again["surprising"]] == \
        [w["word"] for w in data["surprising"]]
    assert [b["ppl"] for b in again["buckets"]] == pytest.approx([b["ppl"] for b in data["buckets"]], rel=1e-5)
    html, _ = write_report([run.dir], tmp_path / "r.html")
    text = html.read_text()
    assert "Where the language model is surprised" in text and "A passage coloured by surprisal" in text
