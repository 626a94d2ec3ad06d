"""The OpenAI-compatible HTTP server: ``create_app(load_engine, ...)`` -> a FastAPI app.

Routes: ``POST /v1/chat/completions`` (answers, streamed as server-sent events with
``stream: true``), ``GET /v1/models``, ``GET /health`` (200 once the engine is ready, 503 while
the model loads, after a failed load and while shutting down). The engine is built by
``load_engine()`` in a background thread once the app starts, so the socket is up (and /health
answers 503) while the model loads. Errors are OpenAI's JSON shape (af2.serve.errors); the
statuses are listed in docs/server.md. On shutdown (uvicorn's, after SIGTERM) the app
refuses new requests with 503 and the engine finishes what it runs, up to ``shutdown_timeout``.

Each request's events come from the engine thread through ``loop.call_soon_threadsafe`` into an
asyncio queue; a client that goes away (its connection closes) cancels its request, so its
batch slot is freed at the engine's next step.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Callable, Optional

from af2._deps import require

require("af2.serve.app", "serve", ["fastapi", "uvicorn"])

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

from af2.serve.audio_input import decode_audio  # noqa: E402
from af2.serve.errors import APIError, error_body, from_rejection  # noqa: E402
from af2.serve.openai_schema import ChatCompletionRequest, parse_request, prompt_and_audio, stop_strings  # noqa: E402
from af2.serve.protocol import Finished, GenerationRequest, RequestRejected, SamplingParams, TokenDelta  # noqa: E402
from af2.serve.request_log import log_request  # noqa: E402

log = logging.getLogger("af2.serve")

#: The largest request body read (base64 audio included); larger ones get 413.
MAX_BODY_BYTES = 128 * 1024 * 1024
#: HTTP status logged for a request whose client disconnected before its answer.
CLIENT_CLOSED = 499
#: Tasks that log cancelled requests (kept referenced until done).
_BACKGROUND: set = set()


class EngineHolder:
    """The engine once loaded, and the server's state: loading, ready, failed, shutting down."""

    def __init__(self, load_engine: Callable[[], object], on_load_error: Optional[Callable[[BaseException], None]]):
        self.load_engine, self.on_load_error = load_engine, on_load_error
        self.engine = None
        self.load_error: Optional[str] = None
        self.shutting_down = False
        self.loaded = threading.Event()

    def load(self) -> None:
        try:
            engine = self.load_engine()
            engine.start()
            self.engine = engine
            log.info("model loaded; ready")
        except BaseException as err:  # noqa: BLE001 (reported: /health stays 503 and the owner is told)
            self.load_error = f"{type(err).__name__}: {err}"
            log.error("loading the model failed: %s", self.load_error, exc_info=err)
            if self.on_load_error is not None:
                self.on_load_error(err)
        finally:
            self.loaded.set()

    @property
    def ready(self) -> bool:
        return self.engine is not None and bool(self.engine.ready) and not self.shutting_down

    def check_accepting(self) -> None:
        """503 unless requests can be taken now."""
        if self.shutting_down:
            raise APIError(503, "the server is shutting down", code="shutting_down")
        if self.load_error is not None:
            raise APIError(503, "the model failed to load", code="model_load_failed")
        if not self.ready:
            raise APIError(503, "the model is loading; retry shortly", code="model_loading")

    def shutdown(self, timeout: float) -> None:
        self.shutting_down = True
        if self.engine is not None:
            self.engine.shutdown(timeout=timeout)


def create_app(
    load_engine: Callable[[], object],
    *,
    model_name: str,
    api_key: Optional[str] = None,
    max_new_tokens: int = 512,
    max_audio_seconds: Optional[float] = None,
    require_audio: bool = True,
    shutdown_timeout: float = 30.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    on_load_error: Optional[Callable[[BaseException], None]] = None,
) -> FastAPI:
    """The app. ``load_engine()``: builds an :class:`af2.serve.engine.Engine` (not started; it is
    called in a background thread at startup, then ``start()``ed); ``model_name``: the name
    clients pass as ``model`` (others get 404); ``api_key``: when set, every ``/v1`` route needs
    ``Authorization: Bearer KEY`` (401 otherwise); ``max_new_tokens``: the answer length when a
    request gives no ``max_tokens``; ``max_audio_seconds``: longer audio gets 413 (checked from
    its header before decoding); ``require_audio``: a request without audio gets 400;
    ``on_load_error(exc)``: called when loading fails (the CLI stops the server then)."""
    holder = EngineHolder(load_engine, on_load_error)
    created = int(time.time())
    key = api_key.encode() if api_key else None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=holder.load, name="af2-serve-load", daemon=True).start()
        yield
        holder.shutting_down = True
        await run_in_threadpool(holder.shutdown, shutdown_timeout)

    app = FastAPI(title="af2", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engines = holder

    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError):
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return JSONResponse(error_body(err.status_code, str(err.detail), code=code), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception):
        log.error("internal error on %s: %s: %s", request.url.path, type(err).__name__, err, exc_info=err)
        return JSONResponse(error_body(500, "internal server error", code="internal_error"), status_code=500)

    def authorize(request: Request) -> None:
        if key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key):
            raise APIError(401, "missing or incorrect API key (Authorization: Bearer KEY)", code="invalid_api_key")

    @app.get("/health")
    async def health():
        if holder.ready:
            return {"status": "ok"}
        state = "shutting_down" if holder.shutting_down else "failed" if holder.load_error else "loading"
        return JSONResponse({"status": state}, status_code=503)

    @app.get("/v1/models")
    async def models(request: Request):
        authorize(request)
        entry = {"id": model_name, "object": "model", "created": created, "owned_by": "af2"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        start = time.perf_counter()
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        stream, audio_seconds = False, None
        try:
            authorize(request)
            req = parse_request(await _read_body(request, max_body_bytes))
            stream = bool(req.stream)
            if req.model != model_name:
                raise APIError(
                    404, f"the model {req.model!r} does not exist (this server has {model_name!r})",
                    code="model_not_found", param="model",
                )  # fmt: skip
            holder.check_accepting()
            audio_limit = max_audio_seconds or getattr(holder.engine, "max_audio_seconds", None)
            generation, audio_param = await _generation_request(
                req, request_id, max_new_tokens, audio_limit, require_audio
            )
            audio_seconds = generation.audio_seconds
            events = EventQueue()
            try:
                handle = holder.engine.submit(generation, on_event=events.callback(deltas=stream))
            except RequestRejected as rejected:
                raise from_rejection(rejected, {"prompt": "messages", "audio": audio_param}) from None
            log.debug("submitted %s (stream: %s)", request_id, stream)
        except APIError as err:
            log_request(request_id, status=err.status, stream=stream, total_s=time.perf_counter() - start,
                        audio_seconds=audio_seconds, code=err.code)  # fmt: skip
            raise
        reply = Reply(request_id, model_name, req, handle, events, start)
        if stream:
            return StreamingResponse(
                reply.sse(request), media_type="text/event-stream",
                headers={"x-request-id": request_id, "cache-control": "no-cache"},
            )  # fmt: skip
        body, status = await reply.whole(request)
        return JSONResponse(body, status_code=status, headers={"x-request-id": request_id})

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body is over {limit} bytes", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"the request body is over {limit} bytes", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _generation_request(
    req: ChatCompletionRequest,
    request_id: str,
    max_new_tokens: int,
    max_audio_seconds: Optional[float],
    require_audio: bool,
) -> tuple[GenerationRequest, Optional[str]]:
    """The engine's request (prompt, audio decoded in a worker thread, sampling parameters) and
    the field of its audio part (``messages.I.content.J.input_audio``), if any."""
    prompt, audio_part = prompt_and_audio(req)
    if audio_part is None and require_audio:
        raise APIError(
            400, "this model answers questions about audio: add an input_audio content part",
            code="missing_audio", param="messages",
        )  # fmt: skip
    wave, rate, where = None, 16000, None
    if audio_part is not None:
        part, where = audio_part
        wave, rate = await run_in_threadpool(
            decode_audio, part.data, part.format, max_seconds=max_audio_seconds, param=where
        )
    limit = req.max_completion_tokens or req.max_tokens or max_new_tokens
    try:
        params = SamplingParams(
            max_new_tokens=limit,
            temperature=0.0 if req.temperature is None else float(req.temperature),
            top_p=1.0 if req.top_p is None else float(req.top_p),
            seed=req.seed,
            stop=stop_strings(req),
        )
    except ValueError as err:
        raise APIError(400, str(err), code="invalid_value") from None
    generation = GenerationRequest(request_id=request_id, prompt=prompt, audio=wave, sampling_rate=rate, params=params)
    return generation, where


class EventQueue:
    """The engine's events of one request, handed to the event loop from the engine thread."""

    def __init__(self):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()

    def callback(self, deltas: bool = True):
        """The engine's ``on_event``; without ``deltas`` only the Finished event is handed over
        (a whole answer needs no per-token wake-ups of the event loop)."""
        loop, put = self.loop, self.queue.put_nowait

        def on_event(event) -> None:
            if not deltas and not isinstance(event, Finished):
                return
            try:
                loop.call_soon_threadsafe(put, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

        return on_event

    async def next(self, disconnected: asyncio.Task):
        """The next event, or None when the client disconnected first."""
        getter = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({getter, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        return None


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client closes the connection."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


class Reply:
    """The answer to one submitted request: whole (JSON) or streamed (SSE)."""

    def __init__(self, request_id, model_name, req: ChatCompletionRequest, handle, events: EventQueue, start):
        self.request_id, self.model_name, self.req, self.handle = request_id, model_name, req, handle
        self.events, self.start = events, start
        self.created = int(time.time())

    def client_gone(self) -> None:
        """The client disconnected before its answer: cancel the request; its log line (499)
        is written once the engine's Finished ("cancelled", tokens so far) arrives."""
        self.handle.cancel()

        async def log_when_finished() -> None:
            event = None
            while not isinstance(event, Finished):
                event = await self.events.queue.get()
            self._log(CLIENT_CLOSED, event, code="client_disconnected")

        task = asyncio.ensure_future(log_when_finished())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def _log(self, status: int, finished: Optional[Finished], code: Optional[str] = None) -> None:
        log_request(
            self.request_id,
            status=status,
            stream=bool(self.req.stream),
            total_s=time.perf_counter() - self.start,
            finished=finished,
            code=code,
        )

    def _failure(self, finished: Finished) -> Optional[APIError]:
        """The error of a request the engine did not finish (cancelled at shutdown, failed)."""
        if finished.finish_reason == "cancelled":
            return APIError(503, "the server shut down before the answer was finished", code="shutting_down")
        if finished.finish_reason == "error":
            return APIError(500, f"generation failed: {finished.error}", code="generation_error")
        return None

    @staticmethod
    def usage(finished: Finished) -> dict:
        return {
            "prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens,
        }

    async def whole(self, request: Request) -> tuple[dict, int]:
        disconnected = asyncio.ensure_future(_wait_disconnect(request))
        try:
            while True:
                event = await self.events.next(disconnected)
                if event is None:
                    self.client_gone()
                    return error_body(400, "client disconnected", code="client_disconnected"), CLIENT_CLOSED
                if isinstance(event, Finished):
                    break
        finally:
            disconnected.cancel()
        failure = self._failure(event)
        if failure is not None:
            self._log(failure.status, event, code=failure.code)
            return failure.body(), failure.status
        self._log(200, event)
        body = {
            "id": self.request_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": event.text},
                    "logprobs": None,
                    "finish_reason": event.finish_reason,
                }
            ],
            "usage": self.usage(event),
        }
        return body, 200

    def _chunk(self, delta: dict, finish_reason: Optional[str] = None) -> str:
        chunk = {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model_name,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.req.include_usage:
            chunk["usage"] = None
        return _sse(chunk)

    async def sse(self, request: Request):
        """Server-sent events as OpenAI sends them: a first chunk with the role, one per text
        delta, one with the finish reason, the usage chunk (``stream_options.include_usage``),
        then ``data: [DONE]``. A request the engine did not finish ends with an error event."""
        disconnected = asyncio.ensure_future(_wait_disconnect(request))
        finished = None
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            while True:
                event = await self.events.next(disconnected)
                if event is None:
                    return
                if isinstance(event, TokenDelta):
                    if event.text:
                        yield self._chunk({"content": event.text})
                    continue
                finished = event
                break
            failure = self._failure(finished)
            if failure is not None:
                self._log(failure.status, finished, code=failure.code)
                yield _sse(failure.body())
            else:
                self._log(200, finished)
                yield self._chunk({}, finished.finish_reason)
                if self.req.include_usage:
                    yield _sse(
                        {
                            "id": self.request_id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model_name,
                            "choices": [],
                            "usage": self.usage(finished),
                        }
                    )
            yield "data: [DONE]\n\n"
        finally:
            disconnected.cancel()
            if finished is None:  # the client went away (or the stream was closed) first
                self.client_gone()


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
