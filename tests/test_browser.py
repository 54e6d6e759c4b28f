"""The page of `trainlab serve` in a real browser (Debian's chromium driven by playwright): upload a
real cats-vs-dogs JPEG and read the predicted class off the page, with the class map beside it; type a prompt for a PTB model and
see text appear as it streams. Slow, and needs chromium: `make test-browser` installs both.
Screenshots go to $TRAINLAB_SCREENSHOTS when it is set (else the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import trainlab
from conftest import PTB_DIR, SHARED, needs_shared

CATSDOGS = SHARED / "cats-vs-dogs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make test-browser installs Debian's)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path):
        import httpx

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen([sys.executable, "-m", "trainlab", "serve", str(model), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(200):
            try:
                httpx.get(self.url + "health", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _shots(tmp_path) -> Path:
    out = Path(os.environ.get("TRAINLAB_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@needs_shared(CATSDOGS)
def test_upload_a_cats_vs_dogs_jpeg_and_read_the_class(browser, tmp_path):
    run = trainlab.train({
        "data": {"name": "catsdogs", "root": str(CATSDOGS), "size": 64, "max_samples": 96, "batch_size": 32},
        "model": {"name": "convnet", "init_args": {"channels": [8, 16], "hidden": [32]}},
        "train": {"epochs": 1}, "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})
    jpeg = sorted((CATSDOGS / "test_set" / "dogs").glob("*.jpg"))[0]
    server = Server(run.best_checkpoint)
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("#classify:not(.hidden)")
        page.set_input_files("#file", str(jpeg))
        page.wait_for_function("['cats', 'dogs'].includes(document.getElementById('prediction').textContent)",
                               timeout=20_000)
        assert page.inner_text("#prediction") in ("cats", "dogs")
        assert page.locator("#bars .bar").count() == 2
        assert page.is_visible("#preview")
        page.wait_for_selector("#cam:not(.hidden)", timeout=30_000)  # the class map beside the bars
        assert page.inner_text("#cls-error") == ""
        assert page.eval_on_selector("#overlay", "img => img.naturalWidth") >= 256
        assert "where the network looks" in page.inner_text("#cam-caption")
        page.screenshot(path=str(_shots(tmp_path) / "serve-catsdogs.png"), full_page=True)
    finally:
        server.stop()


@needs_shared(PTB_DIR)
def test_type_a_ptb_prompt_and_see_text_stream_in(browser, tmp_path):
    run = trainlab.train({
        "data": {"name": "ptb", "root": str(PTB_DIR), "max_tokens": 20_000, "batch_size": 8, "bptt": 16},
        "model": {"name": "rnn_lm", "init_args": {"emb_size": 32, "hidden_size": 32, "num_layers": 1}},
        "task": {"name": "language_model"}, "optim": {"name": "adam", "lr": 1e-2},
        "train": {"epochs": 1, "monitor": "valid.ppl"},
        "run": {"dir": str(tmp_path / "run"), "progress": False, "tensorboard": False}})
    server = Server(run.best_checkpoint)
    try:
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_selector("#lm:not(.hidden)")
        page.fill("#prompt", "the company said")
        page.fill("#words", "30")
        page.click("#generate")
        page.wait_for_function("document.getElementById('generated').textContent.trim().split(/\\s+/).length >= 10",
                               timeout=20_000)
        assert page.inner_text("#lm-error") == ""
        page.wait_for_function("!document.getElementById('generate').disabled")
        page.screenshot(path=str(_shots(tmp_path) / "serve-ptb.png"), full_page=True)
        page.fill("#prompt", "the qwertyuiop said")  # a word PTB does not have: the page shows the 400's message
        page.click("#generate")
        page.wait_for_function("document.getElementById('lm-error').textContent.includes('qwertyuiop')")
    finally:
        server.stop()
