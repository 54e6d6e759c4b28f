"""Text generation: sampling options, seeds, greedy equivalence, UTF-8 output whatever the locale."""

import os
import subprocess
import sys

import pytest
import torch

from trainlab.cli import main
from trainlab.config import ModelConfig
from trainlab.data.vocab import Vocab
from trainlab.inference.generate import filter_logits, generate
from trainlab.models import build_model

from conftest import REPO


@pytest.fixture(scope="module")
def ckpt(tiny_lm):
    return tiny_lm.best_checkpoint


def _gen(ckpt, tmp_path, *args) -> str:
    out = tmp_path / "out.txt"
    assert main(["generate", str(ckpt), "--quiet", "--out", str(out), "--force", *args]) == 0  # replaced each call
    return out.read_text(encoding="utf-8")


def test_generate_never_replaces_an_existing_file_unless_forced(ckpt, tmp_path, capsys):
    out = tmp_path / "mine.txt"
    out.write_text("my own notes", encoding="utf-8")
    assert main(["generate", str(ckpt), "--quiet", "--out", str(out), "--words", "5"]) == 2
    assert "the file exists; nothing is replaced unless you pass --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "my own notes"
    assert main(["generate", str(ckpt), "--quiet", "--out", str(tmp_path / "no" / "such" / "x.txt")]) == 2
    err = capsys.readouterr().err
    assert "the folder" in err and "does not exist" in err
    assert main(["generate", str(ckpt), "--quiet", "--out", str(tmp_path)]) == 2  # a folder: a file name to use
    assert f"is a folder; give a file name (e.g. {tmp_path / 'generated.txt'})" in capsys.readouterr().err
    for flag, value in (("--words", "-5"), ("--top-p", "1.5"), ("--top-k", "0"), ("--temperature", "-1")):
        with pytest.raises(SystemExit):
            main(["generate", str(ckpt), flag, value])
        assert f"argument {flag}: {value} must be" in capsys.readouterr().err


def test_filter_logits_top_k_top_p_temperature():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    assert filter_logits(logits, top_k=1).tolist() == [1.0, 0.0, 0.0, 0.0]
    p2 = filter_logits(logits, top_k=2)
    assert (p2[2:] == 0).all() and p2.sum().item() == pytest.approx(1.0)
    assert filter_logits(logits, top_p=0.01).tolist() == [1.0, 0.0, 0.0, 0.0]
    p = filter_logits(logits, top_p=0.9)  # the top three hold >= 0.9 of the mass, the fourth is cut
    assert p[3] == 0 and (p[:3] > 0).all()
    assert torch.allclose(filter_logits(logits, top_p=1.0), logits.softmax(0))
    hot, cold = filter_logits(logits, temperature=10.0), filter_logits(logits, temperature=0.1)
    assert hot.max() < logits.softmax(0).max() < cold.max()


def test_generation_is_seeded_and_top_k_1_is_greedy(ckpt, tmp_path):
    a = _gen(ckpt, tmp_path, "--words", "30", "--seed", "1")
    assert a == _gen(ckpt, tmp_path, "--words", "30", "--seed", "1")
    assert a != _gen(ckpt, tmp_path, "--words", "30", "--seed", "2", "--temperature", "2.0")
    greedy = _gen(ckpt, tmp_path, "--words", "30", "--temperature", "0")
    assert _gen(ckpt, tmp_path, "--words", "30", "--top-k", "1", "--seed", "7") == greedy
    assert _gen(ckpt, tmp_path, "--words", "30", "--top-p", "1e-6", "--seed", "8") == greedy


@pytest.mark.parametrize("opts", [["--temperature", "0.7"], ["--top-k", "3"], ["--top-p", "0.9"],
                                  ["--prompt", "the dog", "--top-k", "5", "--top-p", "0.95"]])
def test_each_sampling_option_gives_words_of_the_vocabulary(ckpt, tmp_path, opts):
    vocab = Vocab.from_meta(torch.load(ckpt, weights_only=True)["meta"])
    text = _gen(ckpt, tmp_path, "--words", "25", *opts)
    words = text.split()
    assert len(words) >= 20 and set(words) <= set(vocab.itos)
    if "--prompt" in opts:
        assert text.startswith("the dog ")


def test_non_ascii_round_trips_through_generate_out_under_an_ascii_locale(ckpt, tmp_path):
    out = tmp_path / "gen.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    proc = subprocess.run([sys.executable, "-m", "trainlab", "generate", str(ckpt), "--prompt", "a café served",
                           "--words", "3", "--temperature", "0", "--out", str(out)],
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = out.read_bytes().decode("utf-8")  # strict: the file is UTF-8 whatever the locale
    assert text == "a café served crème brûlée\n"
    assert b"caf? served" in proc.stdout  # stdout kept ASCII, replacing what it cannot encode, no crash


def test_transformer_generation_refeeds_its_context():
    torch.manual_seed(0)
    vocab = Vocab(["<unk>", "<eos>"] + [f"w{i}" for i in range(10)])
    m = build_model(ModelConfig(name="transformer_lm", init_args={"d_model": 16, "num_layers": 1, "num_heads": 2,
                                                                  "ff_size": 32, "max_len": 8}),
                    inferred={"vocab_size": len(vocab)})
    pieces = list(generate(m, vocab, 20, prompt="w1 w2", top_k=4, seed=3))  # longer than max_len: a sliding window
    assert len(pieces) == 20 and pieces == list(generate(m, vocab, 20, prompt="w1 w2", top_k=4, seed=3))


def test_a_language_model_given_to_predict_or_diff_is_refused_clearly(ckpt, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"")
    assert main(["predict", str(ckpt), str(tmp_path / "x.png"), "--out", str(tmp_path / "p.csv")]) == 2
    assert "is a language model: trainlab predict classifies images" in capsys.readouterr().err
    assert main(["diff", str(ckpt), str(ckpt), "--out", str(tmp_path / "d")]) == 2
    assert "a language_model checkpoint; trainlab diff compares" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "d").exists()


def test_word_punct_output_puts_punctuation_against_the_word():
    from trainlab.data.vocab import Vocab
    from trainlab.inference.generate import generate

    class Fixed(torch.nn.Module):
        """Always the next token of a fixed sentence (a stand-in LM)."""

        def __init__(self, ids):
            super().__init__()
            self.ids, self.w = ids, torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, state=None):
            n = x.shape[1] if state is None else state + 1
            logits = torch.full((1, x.shape[1], 8), -1e9)
            logits[0, -1, self.ids[(n - 1) % len(self.ids)]] = 0
            return logits, n

    vocab = Vocab(["<unk>", "<eos>", "hear", "me", ",", "speak", ".", "x"], "word_punct")
    model = Fixed([2, 3, 4, 5, 6, 1])
    assert "".join(generate(model, vocab, 6, temperature=0)) == "hear me, speak.\n"
