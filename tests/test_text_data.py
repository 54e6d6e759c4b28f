"""Text corpora: tokenisation, vocabulary, layouts, encodings, and BPTT batching."""

import gzip

import pytest
import torch

from trainlab.config import DataConfig
from trainlab.data import BPTTLoader, Vocab, build_data, tokenize
from trainlab.errors import DataError

from conftest import PTB_DIR, SHAKESPEARE, WIKITEXT2_DIR, needs_shared


def test_word_tokens_end_each_line_with_eos():
    assert tokenize("a  b\n\nc d\n") == ["a", "b", "<eos>", "<eos>", "c", "d", "<eos>"]
    assert tokenize("no final newline") == ["no", "final", "newline", "<eos>"]
    assert tokenize("ab\nc", "char") == ["a", "b", "\n", "c"]


def test_vocab_orders_by_frequency_and_caps_with_unk():
    toks = tokenize("b a b c b a\nd\n")
    v = Vocab.build(toks)
    assert v.itos == ["<unk>", "<eos>", "b", "a", "c", "d"]  # ties (c, d) in order of appearance
    assert Vocab.build(toks, max_size=4).itos == ["<unk>", "<eos>", "b", "a"]
    assert Vocab.build(toks, min_freq=2).itos == ["<unk>", "<eos>", "b", "a"]
    capped = Vocab.build(toks, max_size=4)
    assert capped.encode(["b", "c", "zebra", "<eos>"]).tolist() == [2, 0, 0, 1]
    assert Vocab.from_meta(capped.to_meta()).itos == capped.itos


def _corpus(tmp_path, files: dict):
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_folder_layout_and_vocab_from_train_only(tmp_path):
    root = _corpus(tmp_path, {"train.txt": "a b a\n", "valid.txt": "a c\n", "test.txt": "b\n"})
    bundle = build_data(DataConfig(name="text", root=str(root)))
    assert bundle.vocab.itos == ["<unk>", "<eos>", "a", "b"]
    assert bundle.splits["valid"].tolist() == [2, 0, 1]  # 'c' was never seen in train -> <unk>
    assert bundle.info()["itos"] == bundle.vocab.itos and bundle.model_kwargs() == {"vocab_size": 4}


def test_missing_train_file_says_how_to_use_valid(tmp_path):
    root = _corpus(tmp_path, {"valid.txt": "a\n", "test.txt": "b\n"})
    with pytest.raises(DataError, match="data.files.train=valid.txt data.files.valid=null"):
        build_data(DataConfig(name="text", root=str(root)))


def test_bad_utf8_names_file_and_byte_offset(tmp_path):
    bad = tmp_path / "train.txt"
    bad.write_bytes("héllo wörld\n".encode("utf-8") + b"caf\xe9 latin-1\n")
    with pytest.raises(DataError, match=r"train.txt: not valid UTF-8 at byte offset 17 "):
        build_data(DataConfig(name="text", root=str(tmp_path)))
    gz = tmp_path / "g" / "ptb.train.txt.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(b"ok\n\xff\n"))
    with pytest.raises(DataError, match=r"ptb.train.txt.gz: not valid UTF-8 at byte offset 3 of the decompressed"):
        build_data(DataConfig(name="text", root=str(gz.parent)))


def test_single_file_is_split_by_whole_lines(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    b = build_data(DataConfig(name="text", root=str(f), valid_fraction=0.1, test_fraction=0.2))
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 70 * 3, "valid": 10 * 3, "test": 20 * 3}
    assert b.vocab.itos[b.splits["test"][1]] == "<unk>"  # 'line 80' onwards were never seen in train


@needs_shared(PTB_DIR)
def test_full_ptb_counts_match_the_published_ones():
    b = build_data(DataConfig(name="ptb", root=str(PTB_DIR)))
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 929_589, "valid": 73_760, "test": 82_430}
    assert len(b.vocab) == 10_000


@needs_shared(WIKITEXT2_DIR)
def test_wikitext2_valid_can_stand_in_for_train():
    cfg = DataConfig(name="wikitext2", root=str(WIKITEXT2_DIR), files={"train": "valid.txt", "valid": None},
                     valid_fraction=0.1)
    b = build_data(cfg)
    assert set(b.splits) == {"train", "valid", "test"} and len(b.splits["test"]) == 245_569
    assert len(b.splits["train"]) + len(b.splits["valid"]) == 217_646  # whole lines, every token once


@needs_shared(SHAKESPEARE)
def test_char_level_tiny_shakespeare():
    b = build_data(DataConfig(name="text", root=str(SHAKESPEARE), level="char", valid_fraction=0.05,
                              test_fraction=0.05))
    assert len(b.vocab) == 66  # 65 distinct characters + <unk>
    assert sum(len(v) for v in b.splits.values()) == 1_115_394


def test_windows_are_streams_with_exact_next_token_targets():
    ids = torch.arange(103)
    loader = BPTTLoader(ids, batch_size=4, bptt=7, device=torch.device("cpu"))
    assert loader.data.shape == (4, 25) and len(loader) == 4  # 103 // 4 = 25 per stream; 24 targets / 7
    batches = list(loader.iterate(0))
    assert [tuple(b["inputs"].shape) for b in batches] == [(4, 7), (4, 7), (4, 7), (4, 3)]
    for b in batches:
        assert torch.equal(b["targets"], b["inputs"] + 1)  # arange: the next token is id + 1
        assert torch.equal(b["inputs"][:, 1:], b["targets"][:, :-1])
    seen = torch.cat([b["inputs"] for b in batches], 1)
    assert torch.equal(seen, torch.arange(100).view(4, 25)[:, :24])  # each stream contiguous, covered once
    assert list(loader.iterate(0, start=2))[0]["inputs"].equal(batches[2]["inputs"])


def test_variable_windows_keep_count_and_coverage_and_are_seeded():
    ids = torch.arange(2001)
    loader = BPTTLoader(ids, batch_size=2, bptt=35, device=torch.device("cpu"), seed=3, variable=True)
    b0, b1 = loader.bounds(0), loader.bounds(1)
    assert len(b0) == len(b1) == len(loader) + 1 and b0[0] == 0 and b0[-1] == loader.length - 1
    lengths = [j - i for i, j in zip(b0, b0[1:])]
    assert min(lengths) >= 1 and len(set(lengths)) > 3 and b0 != b1
    assert b0 == loader.bounds(0)
    for b in loader.iterate(0):
        assert torch.equal(b["targets"], b["inputs"] + 1)


def test_too_few_tokens_for_the_batch_is_a_clear_error():
    with pytest.raises(DataError, match="valid split has 5 tokens: too few for 4 streams"):
        BPTTLoader(torch.arange(5), batch_size=4, bptt=3, device=torch.device("cpu"), split="valid")


@pytest.mark.parametrize("raw, advice", [
    ("the cat\nsat on the mat\n".encode("utf-16"), "iconv -f UTF-16 -t UTF-8"),
    ("the cat\nsat on the mat\n".encode("utf-16-le"), "UTF-16 without a byte-order mark.*iconv -f UTF-16LE"),
    ("caf\xe9 \u201cquoted\u201d\n".encode("cp1252"), "iconv -f cp1252 -t UTF-8"),
    ("caf\xe9 cr\xe8me\n".encode("latin1"), "iconv -f latin1 -t UTF-8"),
])
def test_a_corpus_that_is_not_utf8_gets_the_right_conversion_advice(tmp_path, raw, advice):
    from trainlab.data.text_files import read_text

    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=f"corpus.txt: .*{advice}"):
        read_text(path)


def test_control_characters_in_a_corpus_are_reported_with_their_line(tmp_path):
    from trainlab.data.text_files import read_text

    path = tmp_path / "corpus.txt"
    path.write_text("a fine line\nanother\none with a \x00 null and a \x1b escape\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"corpus.txt: 2 control character\(s\) \(U\+0000, U\+001B\), the first on line 3"):
        read_text(path)
    path.write_text("tabs\tare fine\r\nand CRLF too\n", encoding="utf-8")
    assert read_text(path) == "tabs\tare fine\nand CRLF too\n"


def test_word_punct_splits_punctuation_from_words():
    from trainlab.data.vocab import tokenize

    assert tokenize("Before we proceed, hear me speak.\nbirth,--an don't well-known\n", "word_punct") == [
        "Before", "we", "proceed", ",", "hear", "me", "speak", ".", "<eos>",
        "birth", ",", "-", "-", "an", "don't", "well-known", "<eos>"]
    assert tokenize("birth,--an\n", "word") == ["birth,--an", "<eos>"]  # PTB/WikiText convention unchanged


@needs_shared(SHAKESPEARE)
def test_tiny_shakespeare_word_punct_vocabulary_is_smaller():
    from trainlab.data.text_files import read_text
    from trainlab.data.vocab import tokenize

    text = read_text(SHAKESPEARE)
    assert len(set(tokenize(text, "word_punct"))) < 0.7 * len(set(tokenize(text, "word")))
