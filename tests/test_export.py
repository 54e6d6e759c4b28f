"""`trainlab export`: every format for each model family (image classifier, video classifier,
LSTM, GRU and Transformer language models), checked against the PyTorch model on real inputs,
metadata read back as a user would, a model card beside each file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import trainlab
from conftest import TINY_CORPUS, lm_recipe, tiny_recipe
from trainlab.errors import CheckpointError
from trainlab.inference import parity
from trainlab.inference.export import export

FORMATS = ("onnx", "torchscript", "safetensors", "state_dict")
EXT = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors", "state_dict": ".pth"}


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    return trainlab.train(tiny_recipe(tmp_path_factory.mktemp("mnist") / "run"))


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    from trainlab.data.moving_digits import make_moving_digits

    root = tmp_path_factory.mktemp("video")
    make_moving_digits(root / "md", mnist=None, train_per_class=3, test_per_class=2, frames=8)
    return trainlab.train({
        "data": {"name": "videofolder", "root": str(root / "md"), "frames": 4, "size": 32, "batch_size": 4},
        "model": {"name": "cnn_lstm", "init_args": {"encoder_args": {"channels": [4, 4, 8, 8]}, "hidden_size": 8,
                                                    "latent_dim": 8}},
        "task": {"name": "video"}, "train": {"epochs": 1},
        "run": {"dir": str(root / "run"), "progress": False, "tensorboard": False}})


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    corpus = root / "tiny.txt"
    corpus.write_text(TINY_CORPUS, encoding="utf-8")
    gru = trainlab.train(lm_recipe(root / "gru", corpus, train={"epochs": 1},
                                   model={"init_args": {"rnn_type": "GRU", "emb_size": 16, "hidden_size": 16,
                                                        "num_layers": 1, "tie_weights": False}}))
    tf = trainlab.train(lm_recipe(root / "tf", corpus, train={"epochs": 1},
                                  model={"name": "transformer_lm", "init_args": {
                                      "d_model": 16, "num_layers": 1, "num_heads": 2, "ff_size": 32, "max_len": 16}}))
    return {"gru": gru, "transformer": tf}


def _export(run, fmt, tmp_path):
    model = trainlab.load(run.best_checkpoint)
    return export(model, fmt, tmp_path / f"model{EXT[fmt]}", checkpoint=run.best_checkpoint)


def _checked(res, positions_at_least=1):
    p = res.parity
    assert p["inputs"] == "data" and p["max_abs_diff"] <= 1e-3 and p["top1_agreement"] == 1.0
    assert p["positions"] >= positions_at_least
    assert res.card.is_file() and "## How to load it" in res.card.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", FORMATS)
def test_classifier_exports_every_format_and_matches_pytorch(mnist_run, tmp_path, fmt):
    res = _export(mnist_run, fmt, tmp_path)
    _checked(res, positions_at_least=16)
    card = res.card.read_text(encoding="utf-8")
    assert "acc1" in card and "Wilson" in card and "mnist5k" in card and "0, 1, 2" in card


def test_onnx_carries_its_metadata_and_takes_any_batch(mnist_run, tmp_path):
    res = _export(mnist_run, "onnx", tmp_path)
    sess = parity.onnx_session(res.path)
    props = sess.get_modelmeta().custom_metadata_map
    meta = json.loads(props["trainlab.json"])
    assert json.loads(props["class_names"]) == [str(i) for i in range(10)] == meta["class_names"]
    assert meta["input_shape"] == [1, 28, 28] and len(meta["mean"]) == 1 and meta["task"] == "classification"
    model = trainlab.load(mnist_run.best_checkpoint)
    for n in (1, 7):
        x = torch.randn(n, 1, 28, 28)
        (got,) = sess.run(None, {"input": x.numpy()})
        assert got.shape == (n, 10) and np.abs(got - model(x).detach().numpy()).max() < 1e-4


def test_torchscript_and_safetensors_carry_metadata(mnist_run, tmp_path):
    ts = _export(mnist_run, "torchscript", tmp_path)
    extra = {"trainlab.json": ""}
    loaded = torch.jit.load(str(ts.path), _extra_files=extra)
    assert json.loads(extra["trainlab.json"])["class_names"][3] == "3"
    assert loaded(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    st = _export(mnist_run, "safetensors", tmp_path)
    assert st.extra == [tmp_path / "model.safetensors.json"] and json.loads(st.extra[0].read_text())["std"]
    from safetensors import safe_open

    with safe_open(str(st.path), "pt") as f:
        assert json.loads(f.metadata()["trainlab.json"])["model"] == "convnet"


def test_state_dict_loads_into_the_users_own_class(mnist_run, tmp_path):
    from trainlab.models.convnet import ConvNet

    res = _export(mnist_run, "state_dict", tmp_path)
    model = ConvNet(num_classes=10, in_channels=1, input_size=[28, 28], channels=[8, 16], hidden=[32], dropout=0.1)
    model.load_state_dict(torch.load(res.path, weights_only=True))
    ref = trainlab.load(mnist_run.best_checkpoint)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model.eval()(x), ref(x))
    assert "from trainlab.models.convnet import ConvNet" in res.card.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_video_classifier_exports_clips(video_run, tmp_path, fmt):
    res = _export(video_run, fmt, tmp_path)
    _checked(res)
    meta = json.loads((tmp_path / "model.safetensors.json").read_text()) if fmt == "safetensors" else None
    if meta:
        assert meta["input"] == "clip" and len(meta["input_shape"]) == 4


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "state_dict"])
def test_lstm_lm_exports_its_state_in_and_out(tiny_lm, tmp_path, fmt):
    res = _export(tiny_lm, fmt, tmp_path)
    _checked(res, positions_at_least=16)
    if fmt == "onnx":
        sess = parity.onnx_session(res.path)
        assert [i.name for i in sess.get_inputs()] == ["ids", "h0", "c0"]
        assert [o.name for o in sess.get_outputs()] == ["logits", "h", "c"]
        meta = json.loads(sess.get_modelmeta().custom_metadata_map["trainlab.json"])
        assert "café" in meta["vocab"]["itos"]


@pytest.mark.parametrize("family", ["gru", "transformer"])
def test_other_lms_export_to_onnx(lm_runs, tmp_path, family):
    res = _export(lm_runs[family], "onnx", tmp_path)
    _checked(res)
    names = [i.name for i in parity.onnx_session(res.path).get_inputs()]
    assert names == (["ids", "h0"] if family == "gru" else ["ids"])


def test_a_difference_past_tolerance_is_an_error(mnist_run, tmp_path, monkeypatch):
    real = parity._run_onnx
    monkeypatch.setattr(parity, "_run_onnx", lambda *a: [t + 0.01 for t in real(*a)])
    with pytest.raises(CheckpointError, match="differs from the PyTorch model by 0.01"):
        _export(mnist_run, "onnx", tmp_path)


def test_export_cli(mnist_run, capsys):
    from trainlab.cli import main

    assert main(["export", str(mnist_run.best_checkpoint), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "max abs diff" in out and "top-1 agreement 100.0%" in out
    assert (mnist_run.dir / "export" / "best.onnx").is_file() and (mnist_run.dir / "export" / "best.onnx.md").is_file()


def test_a_video_export_is_served_and_predicts_a_clip(video_run, tmp_path):
    from fastapi.testclient import TestClient

    from trainlab.inference.serve import create_app

    res = _export(video_run, "onnx", tmp_path)
    clip = sorted((video_run.dir.parent / "md").rglob("*.avi"))[0]
    with TestClient(create_app(res.path)) as c:
        got = c.post("/predict", files={"file": (clip.name, clip.read_bytes(), "video/x-msvideo")}).json()
        assert c.get("/model").json()["input"] == "clip"
        bad = c.post("/predict", content=b"not a video" * 50, headers={"content-type": "video/mp4"})
    with TestClient(create_app(video_run.best_checkpoint)) as c:
        want = c.post("/predict", files={"file": (clip.name, clip.read_bytes(), "video/x-msvideo")}).json()
    assert got["prediction"] == want["prediction"] and got["prediction"] in ("down", "left", "right", "up")
    assert bad.status_code == 400 and "cannot decode video" in bad.json()["error"]


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_an_onnx_lm_generates_the_checkpoints_text(tiny_lm, lm_runs, tmp_path, family):
    from trainlab.data.vocab import Vocab
    from trainlab.inference.generate import generate
    from trainlab.inference.served import load_served

    run = tiny_lm if family == "lstm" else lm_runs["transformer"]
    res = _export(run, "onnx", tmp_path)
    model = trainlab.load(run.best_checkpoint)
    kw = dict(prompt="the cat", temperature=0.9, seed=4)
    want = "".join(generate(model, Vocab.from_meta(model.trainlab_meta), 15, **kw))
    served = load_served(res.path)
    assert "".join(generate(served.generator(), served.vocab(), 15, **kw)) == want
