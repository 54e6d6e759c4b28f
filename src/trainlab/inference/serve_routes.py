"""The FastAPI routes of `trainlab serve` (inference.serve.App holds the model and the handlers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import TrainlabError

LOG = logging.getLogger("trainlab")
PAGE = Path(__file__).with_name("static") / "index.html"


class ApiError(Exception):
    """A request the server refuses: its HTTP status and the message the client gets as JSON."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class GenerateRequest(BaseModel):
    prompt: str = Field("", max_length=10_000, description="text to continue (words the model knows)")
    words: int = Field(50, ge=1, le=2000, description="tokens to generate")
    temperature: float = Field(1.0, ge=0.0, le=100.0, description="softmax temperature; 0 is greedy")
    top_k: Optional[int] = Field(None, ge=1, description="sample among the k most likely tokens")
    top_p: Optional[float] = Field(None, gt=0.0, le=1.0, description="nucleus sampling mass")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    stream: bool = Field(True, description="stream the text as it is sampled (text/plain); else one JSON")


def _error(status: int, message, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def _handlers(app: FastAPI, state) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        state.counts["errors"] += 1
        return _error(e.status, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        state.counts["errors"] += 1
        problems = [f"{'.'.join(str(p) for p in err['loc'][1:]) or err['loc'][0]}: {err['msg']}" for err in e.errors()]
        return _error(422, "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return _error(e.status_code, e.detail)

    @app.exception_handler(TrainlabError)
    async def trainlab_error(request: Request, e: TrainlabError):
        state.counts["errors"] += 1
        return _error(400, str(e))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception):  # the server answers and goes on
        LOG.exception("request failed")
        state.counts["errors"] += 1
        return _error(500, f"internal error ({type(e).__name__}: {e})")


def _generate(state, req: GenerateRequest):
    from .generate import generate, unknown_tokens

    served = state.served
    if not served.is_lm:
        raise ApiError(400, f"{served.name} is a {served.task} model: POST /predict with an image")
    vocab = served.vocab()
    if req.words > state.settings.max_words:
        raise ApiError(422, f"words: at most {state.settings.max_words}")
    if req.top_k is not None and req.top_k > len(vocab.itos):
        raise ApiError(422, f"top_k: at most the vocabulary size, {len(vocab.itos)}")
    unknown = unknown_tokens(vocab, req.prompt)
    if unknown:
        raise ApiError(400, f"the prompt has words the model does not know: {' '.join(unknown[:20])}"
                            f"{' ...' if len(unknown) > 20 else ''} (its vocabulary has {len(vocab.itos)} entries)")
    pieces = generate(served.generator(), vocab, req.words, prompt=req.prompt, temperature=req.temperature,
                      top_k=req.top_k, top_p=req.top_p, seed=req.seed)
    if req.stream:
        return StreamingResponse(pieces, media_type="text/plain; charset=utf-8",
                                 headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"})
    return {"prompt": req.prompt, "text": "".join(pieces)}


class _Count:
    """Counts requests: a plain ASGI wrapper (starlette's @app.middleware costs far more per request)."""

    def __init__(self, app, counts: dict):
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.counts["requests"] += 1
        await self.app(scope, receive, send)


def build_app(state) -> FastAPI:
    served = state.served
    app = FastAPI(title=f"trainlab serve: {served.name}",
                  description=f"A {served.task} model trained with trainlab ({served.backend}).")
    app.state.trainlab = state
    _handlers(app, state)

    app.add_middleware(_Count, counts=state.counts)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/health")
    def health() -> dict:
        return state.health()

    @app.get("/model")
    def model() -> dict:
        return state.model()

    @app.post("/predict", summary="top-k classes of an image or clip (raw bytes or a multipart upload)")
    async def predict(request: Request, topk: int = Query(5, ge=1, le=1000)):
        return await state.predict(request, topk)

    @app.post("/explain", summary="the class map (LayerCAM) of an image over it: a PNG, base64 in the JSON")
    async def explain(request: Request):
        return await state.explain(request)

    @app.post("/generate", summary="text from a language model, streamed as it is sampled")
    def generate_text(req: GenerateRequest):
        return _generate(state, req)

    return app
