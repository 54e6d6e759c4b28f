"""`trainlab serve`: a checkpoint or an ONNX export behind an HTTP JSON API and a web page.

    POST /predict    image or clip bytes (raw body or a multipart upload), ?topk=5 -> top-k classes
    POST /explain    image bytes -> the class map over the image (a PNG, base64), checkpoints of image models
    POST /generate   {"prompt", "words", "temperature", "top_k", "top_p", "seed"} -> text, streamed
    GET  /health     liveness and counts;  GET /model: the model's metadata;  GET /: the web page
    GET  /docs       the OpenAPI page FastAPI writes

/predict requests are micro-batched (``inference.batching``). Bad input gets a 4xx JSON answer
``{"error": ..., "status": ...}`` and the server goes on: a body past ``max_upload_mb`` (413,
before it is read whole), an image past ``max_pixels`` (413, from its header, before decoding),
a body that is not an image or clip (400), a content type that is neither (415), a prompt of
words the vocabulary lacks (400), sampling values out of range (422).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import DataError
from .batching import MicroBatcher
from .served import ServedModel, load_served
from .serve_routes import ApiError, build_app

LOG = logging.getLogger("trainlab")
RAW_TYPES = ("image/", "video/", "application/octet-stream")


@dataclass
class ServeSettings:
    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000
    batch_ms: float = 5.0      # micro-batching wait; 0 turns it off
    max_batch: int = 64
    max_words: int = 2000
    device: str = "cpu"
    trust_class_path: bool = False
    threads: Optional[int] = None  # onnxruntime's intra-op threads (PyTorch's are set by the CLI)


def _pixel_check(data: bytes, filename: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels``, before decoding it."""
    import io
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # our own limit, with its option in the message
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Exception:  # noqa: BLE001 - not an image Pillow knows: the decoder says why
        return
    if w * h > max_pixels:
        raise ApiError(413, f"{filename}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is more than the server's "
                            f"--max-pixels={max_pixels:,}; refused before decoding")


async def read_body(request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload of {int(declared) / 1e6:.1f} MB is past the server's --max-upload-mb="
                            f"{limit / 1e6:g}")
    chunks, got = [], 0
    async for chunk in request.stream():
        got += len(chunk)
        if got > limit:
            raise ApiError(413, f"upload is past the server's --max-upload-mb={limit / 1e6:g}")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_from(request, limit: int) -> tuple[bytes, str]:
    """(bytes, file name) of a raw body or of the first file of a multipart form."""
    ctype = request.headers.get("content-type", "").lower()
    if not (ctype.startswith("multipart/form-data") or ctype.startswith(RAW_TYPES)):
        raise ApiError(415, f"content type {ctype or 'none'!r}: send the file's bytes as image/*, video/* or "
                            f"application/octet-stream, or as a multipart/form-data upload")
    body = await read_body(request, limit)
    if not ctype.startswith("multipart/form-data"):
        return body, request.query_params.get("filename", "upload")
    request._body = body  # starlette's form parser reads the body we already hold (and counted)
    try:
        form = await request.form()
    except Exception as e:  # noqa: BLE001 - a malformed form is the client's
        raise ApiError(400, f"malformed multipart upload ({e})") from None
    files = [v for v in form.values() if hasattr(v, "read")]
    if not files:
        raise ApiError(400, "multipart upload without a file field")
    f = files[0]
    if f.content_type and not f.content_type.lower().startswith(RAW_TYPES):
        raise ApiError(415, f"{f.filename}: content type {f.content_type!r} is not an image or a video")
    return await f.read(), f.filename or "upload"


class App:
    """The served model, its batcher and counters, and the request handlers."""

    def __init__(self, served: ServedModel, settings: ServeSettings):
        self.served, self.settings = served, settings
        self.batcher = None if served.is_lm else MicroBatcher(self._forward, settings.batch_ms, settings.max_batch)
        self.counts = {"requests": 0, "errors": 0}
        self.started = time.time()
        self._model_lock = threading.Lock()  # /explain hooks the model's layers: no forward pass meanwhile

    def _forward(self, inputs):
        with self._model_lock:
            return list(self.served.probabilities(inputs))

    async def explain(self, request) -> dict:
        from starlette.concurrency import run_in_threadpool

        from .serve_explain import explain_image, explain_refusal

        refusal = explain_refusal(self.served)
        if refusal:
            raise ApiError(400, refusal)
        t = time.perf_counter()
        x, name = await self._read(request)

        def run():
            with self._model_lock:
                return explain_image(self.served, x)

        out = await run_in_threadpool(run)
        return {"file": name, **out, "ms": round((time.perf_counter() - t) * 1000, 2)}

    async def predict(self, request, topk: int) -> dict:
        if self.served.is_lm:
            raise ApiError(400, f"{self.served.name} is a language model: POST /generate")
        t = time.perf_counter()
        with self.batcher.arriving():
            x, name = await self._read(request)
        probs = await self.batcher.submit(x)
        k = min(topk, len(self.served.class_names))
        top_p, top_i = probs.topk(k)
        preds = [{"class": self.served.class_names[i], "probability": round(float(p), 6)}
                 for p, i in zip(top_p.tolist(), top_i.tolist())]
        return {"file": name, "prediction": preds[0]["class"], "top": preds,
                "ms": round((time.perf_counter() - t) * 1000, 2)}

    async def _read(self, request):
        """The upload decoded (in a worker thread: a large JPEG takes milliseconds)."""
        from starlette.concurrency import run_in_threadpool

        data, name = await upload_from(request, int(self.settings.max_upload_mb * 1e6))
        if self.served.input != "clip":
            _pixel_check(data, name, self.settings.max_pixels)
        try:
            return await run_in_threadpool(self.served.decode, data, name, self.settings.max_pixels), name
        except DataError as e:
            raise ApiError(400, str(e)) from None

    def health(self) -> dict:
        return {"status": "ok", "model": self.served.name, "task": self.served.task, "backend": self.served.backend,
                "uptime_s": round(time.time() - self.started, 1), **self.counts}

    def model(self) -> dict:
        limits = {"max_upload_mb": self.settings.max_upload_mb, "max_pixels": self.settings.max_pixels,
                  "max_words": self.settings.max_words}
        batching = self.batcher.describe() if self.batcher else None
        return {**self.served.public_meta(), "limits": limits, "batching": batching}


def create_app(model: str | Path | ServedModel, settings: Optional[ServeSettings] = None):
    """The FastAPI application serving ``model`` (a path, or a ServedModel already loaded)."""
    settings = settings or ServeSettings()
    served = model if isinstance(model, ServedModel) else load_served(model, settings.device,
                                                                      settings.trust_class_path, settings.threads)
    return build_app(App(served, settings))


def run_server(model: str | Path, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    app = create_app(model, settings)
    served = app.state.trainlab.served
    local = host in ("127.0.0.1", "localhost", "::1")
    where = ("bound to 127.0.0.1: reachable from this machine only (--host 0.0.0.0 to listen on every interface)"
             if local else f"bound to {host}: reachable from other machines on the network")
    batching = f"micro-batching up to {settings.max_batch} requests within {settings.batch_ms:g} ms" \
        if settings.batch_ms > 0 else "micro-batching off"
    if served.is_lm:
        batching = "POST /generate streams text"
    print(f"serving {served.name} ({served.task}, {served.backend}) at http://{host}:{port}/ ; {where}; "
          f"{batching}; API docs at /docs", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", **server_stack())


def server_stack() -> dict:
    """uvicorn's fast event loop (uvloop) and HTTP parser (httptools) where installed (pyproject declares
    both; uvloop has no Windows build), else its pure-Python ones."""
    import importlib.util

    return {"loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
            "http": "httptools" if importlib.util.find_spec("httptools") else "h11"}
