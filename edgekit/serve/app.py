"""The ASGI app (Starlette): OpenAI-compatible chat completions, text completions and embeddings over an
``edgekit.Assistant``.

Routes: ``POST /v1/chat/completions`` (JSON or SSE), ``POST /v1/completions`` (legacy text completion,
JSON or SSE; see ``completions.py``), ``POST /v1/embeddings`` (the on-device sentence encoder; see
``embeddings.py``), ``GET /v1/models`` (the served model, then the embedding model), ``GET
/v1/models/{id}``, ``GET /health`` (alias ``/healthz``; never behind the API key). Errors use OpenAI's
error body. Every route under /v1 takes a generation slot (embeddings too: they use the same cores).

How a request runs: the body is validated on the event loop; admission (see ``admission.py``) gives it a
generation slot or a 429/503; the assistant runs in a worker thread (one per slot), so the loop keeps
answering health checks and other clients. A stream's chunks cross back to the loop through an asyncio
queue. Answers of a cascade carry ``edgekit_route`` (route, escalation or degradation reason, trace
id); OpenAI clients ignore fields they do not know. Stopping: a client that disconnects, or a server that
shuts down, sets the job's cancel flag; the worker closes the chunk iterator after the chunk in hand,
which stops generation, and the slot returns to the pool when the worker is done. A non-streaming
generation runs to its end (bounded by max_tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from edgekit.assistant import Answer, AnswerStream, Assistant
from edgekit.errors import (
    ContextOverflowError,
    EdgekitError,
    EmptyPromptError,
    EncodingError,
    InputError,
    MissingDependencyError,
    RemoteError,
    ServerBusyError,
    ShuttingDownError,
)
from edgekit.runtime.encoder import MULTILINGUAL_MODEL
from edgekit.runtime.types import Chunk, Usage
from edgekit.serve.admission import Admission
from edgekit.serve.completions import TextShaper, parse_completion, text_completion_body
from edgekit.serve.embeddings import Embedder, parse_embeddings
from edgekit.serve.protocol import Responder
from edgekit.serve.schema import (
    DEFAULT_MAX_TOKENS,
    ApiError,
    ChatCall,
    ChunkShaper,
    completion_body,
    parse_request,
)

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send
except ImportError as e:  # pragma: no cover - exercised by a test that hides starlette
    raise MissingDependencyError(
        f"edgekit serve needs the 'serve' extra ({e.name} is not installed)", "pip install 'edgekit[serve]'"
    ) from None

log = logging.getLogger("edgekit.serve")
T = TypeVar("T")

# Hints that speak HTTP in place of the CLI's ones (kept only where the error carries its default hint).
_HTTP_HINTS: dict[type[EdgekitError], str] = {
    EmptyPromptError: "Send at least one user message with text.",
    ContextOverflowError: "Shorten the prompt, or start the server with a larger --n-ctx.",
    EncodingError: "Send the text as valid UTF-8.",
}


@dataclass(frozen=True)
class ServeOptions:
    """Server limits. ``api_key``: bearer token required on /v1 (None: open)."""

    api_key: str | None = field(default=None, repr=False)
    concurrency: int = 1
    max_queue: int = 16
    queue_timeout_s: float = 30.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    """Default when a request gives neither max_tokens nor max_completion_tokens."""
    max_body_bytes: int = 8 << 20
    """Larger bodies get 413."""
    max_messages: int = 2048
    """Messages per chat request; more: 400 (work grows faster than the count: templates, tokenizer)."""
    close_wait_s: float = 10.0
    """At shutdown, how long to wait for running generations before closing the responder."""
    embedding_model: str | None = MULTILINGUAL_MODEL
    """The models.lock encoder behind /v1/embeddings, loaded on its first request (None: no embeddings)."""
    max_embedding_inputs: int = 2048
    """Texts per embeddings request (OpenAI's limit); more: 400."""
    max_embedding_tokens: int = 65536
    """Tokens per embeddings request (about 15 s of one core for e5-small); more: 400."""

    def __post_init__(self) -> None:
        checks = [
            (self.concurrency >= 1, "--concurrency must be 1 or more"),
            (self.max_queue >= 0, "--max-queue must be 0 or more"),
            (self.queue_timeout_s > 0, "--queue-timeout must be more than 0 seconds"),
            (self.max_tokens >= 1, "the default max_tokens must be 1 or more"),
            (self.max_messages >= 1, "max_messages must be 1 or more"),
            (self.max_embedding_inputs >= 1, "max_embedding_inputs must be 1 or more"),
            (self.max_embedding_tokens >= 1, "max_embedding_tokens must be 1 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        if self.api_key is not None and not self.api_key.strip():
            raise InputError("the API key is empty", "Set the variable named by --api-key-env to the key.")


@dataclass(frozen=True)
class _End:
    """Marks the end of a stream on the worker-to-loop queue, with the answer it made."""

    answer: Answer | None


_Item = Chunk | BaseException | _End | Answer


class Service:
    """State shared by the routes: the assistant, admission, worker threads and their cancel flags."""

    def __init__(self, assistant: Assistant, options: ServeOptions) -> None:
        self.assistant = assistant
        self.name = assistant.name
        self.options = options
        self.admission = Admission(options.concurrency, options.max_queue, options.queue_timeout_s)
        self.executor = ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="edgekit-serve"
        )
        self.cancels: set[threading.Event] = set()
        self.embedder = (
            Embedder(options.embedding_model, max_tokens=options.max_embedding_tokens)
            if options.embedding_model
            else None
        )
        self.created = int(time.time())
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.stopping = False  # the grace time is over: running streams end with an error event

    # --- lifecycle --------------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Thread- and signal-safe: stop admitting (queued requests get 503); running ones go on for
        ``close_wait_s``, then every stream still running ends with an error event (``end_streams``)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():

            def begin() -> None:
                self.admission.drain()
                loop.call_later(self.options.close_wait_s, self.end_streams)

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(begin)

    def end_streams(self) -> None:
        """Thread- and signal-safe: end every running stream after the chunk in hand, with an error event
        that says the server stopped (the response itself completes, so no client sees a cut connection)."""
        self.stopping = True
        self.cancel_all()

    def cancel_all(self) -> None:
        """Thread- and signal-safe: ask every running stream to stop after the chunk in hand."""
        for cancel in list(self.cancels):
            cancel.set()

    async def shutdown(self) -> None:
        """Stop what still runs, wait for the workers, then close the responder (never under a worker)."""
        self.admission.drain()
        self.cancel_all()
        waiter = threading.Thread(target=self.executor.shutdown, name="edgekit-serve-close", daemon=True)
        waiter.start()
        deadline = time.monotonic() + self.options.close_wait_s
        while waiter.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if waiter.is_alive():
            log.warning("a generation still runs after %gs; not closing the model", self.options.close_wait_s)
            return
        self.closed = True
        self.assistant.close()

    # --- jobs ---------------------------------------------------------------------------------------

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Run ``work`` on a worker thread; the slot the caller holds is released when it ends."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            fut = self.executor.submit(work)
        except BaseException:
            self.admission.release()
            raise

        def done(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: the process is exiting
                loop.call_soon_threadsafe(self.admission.release, time.monotonic() - started)

        fut.add_done_callback(done)
        return fut

    async def run(self, work: Callable[[], T]) -> T:
        """``work``'s result, from a worker thread (the caller holds a slot)."""
        return await asyncio.wrap_future(self.submit(work))

    async def complete(self, call: ChatCall) -> Answer:
        def work() -> Answer:
            answer = self.assistant.chat(call.messages, stream=False, **call.kwargs())
            assert isinstance(answer, Answer)
            return answer

        return await self.run(work)

    def route_fields(self, answer: Answer | None) -> dict[str, Any]:
        """``edgekit_route`` for a cascade's answers (one model has no route to tell)."""
        if answer is None or self.assistant.router is None:
            return {}
        return {"edgekit_route": answer.route_info()}

    def model_of(self, answer: Answer | None) -> str:
        """The ``model`` a response reports: for a cascade the model that answered, else the one served."""
        if answer is None or self.assistant.router is None:
            return self.name
        return answer.completion.model or self.name

    def stream(
        self, start: Callable[[], Answer | AnswerStream], cancel: threading.Event
    ) -> asyncio.Queue[_Item]:
        """Start a streaming job (``start``: the assistant's streaming call); its chunks, then ``_End`` or
        the exception, arrive on the queue (first the ``Answer``, when a cascade decided it before
        anything was shown)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()

        def put(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        def work() -> None:
            try:
                chunks = start()
                assert isinstance(chunks, AnswerStream)
                if chunks.answer is not None:
                    put(chunks.answer)
                cut = False
                try:
                    for chunk in chunks:
                        put(chunk)
                        if cancel.is_set():
                            cut = True
                            break
                finally:
                    chunks.close()
                if cut and self.stopping:
                    put(ShuttingDownError("the server stopped before this answer was complete"))
                else:
                    put(_End(chunks.answer))
            except BaseException as e:
                put(e)
            finally:
                self.cancels.discard(cancel)

        self.cancels.add(cancel)
        try:
            self.submit(work)
        except BaseException:
            self.cancels.discard(cancel)
            raise
        return queue


# --- routes ---------------------------------------------------------------------------------------------


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def chat_completions(request: Request) -> Response:
    service = _service(request)
    try:
        body = await _read_body(request, service.options.max_body_bytes)
    except ClientDisconnect:
        return Response(status_code=400)
    call = parse_request(body, service.options.max_tokens)
    if len(call.messages) > service.options.max_messages:
        raise ApiError(
            400,
            f"{len(call.messages)} messages; this server takes at most {service.options.max_messages}",
            param="messages",
            code="too_many_messages",
        )
    started = time.monotonic()
    await _admit(request, service)
    if call.stream and not call.tools:
        start = partial(service.assistant.chat, call.messages, stream=True, **call.kwargs())
        shaper = partial(ChunkShaper, include_usage=call.include_usage)
        return await _stream_response(request, service, start, shaper, started, "chat.completions")
    try:
        answer = await service.complete(call)
    except Exception as e:
        raise _api_error(e) from None
    _log_answer(answer, started, "chat.completions", stream=call.stream)
    body_out = completion_body(answer, model=service.model_of(answer))
    if call.stream:  # a tool call is sent whole, once its arguments are validated and checked
        return _SSEResponse(_tool_call_events(body_out, call, service, answer), on_close=lambda: None)
    return JSONResponse({**body_out, **service.route_fields(answer)})


async def _tool_call_events(
    body: dict[str, Any], call: ChatCall, service: Service, answer: Answer
) -> AsyncIterator[bytes]:
    shaper = ChunkShaper(service.model_of(answer), call.include_usage)
    choice = body["choices"][0]
    yield _sse(shaper.first())
    if "tool_calls" not in choice["message"]:  # tool_choice "auto": answered without a tool
        yield _sse(shaper.event({"content": choice["message"]["content"]}))
    for i, tool_call in enumerate(choice["message"].get("tool_calls", [])):
        yield _sse(shaper.event({"tool_calls": [{"index": i, **tool_call}]}))
    yield _sse({**shaper.finish(choice["finish_reason"]), **service.route_fields(answer)})
    if shaper.include_usage:
        yield _sse(shaper.usage(answer.completion.usage))
    yield b"data: [DONE]\n\n"


async def completions(request: Request) -> Response:
    """Legacy text completion: the prompt continued as plain text (see ``completions.py``)."""
    service = _service(request)
    try:
        body = await _read_body(request, service.options.max_body_bytes)
    except ClientDisconnect:
        return Response(status_code=400)
    call = parse_completion(body)
    started = time.monotonic()
    await _admit(request, service)
    complete = partial(service.assistant.complete, call.prompt, **call.kwargs())
    echo = call.prompt if call.echo else ""
    if call.stream:
        shaper = partial(TextShaper, include_usage=call.include_usage, echo=echo)
        start = partial(complete, stream=True)
        return await _stream_response(request, service, start, shaper, started, "completions")
    try:
        answer = await service.run(partial(complete, stream=False))
    except Exception as e:
        raise _api_error(e, param="prompt") from None
    assert isinstance(answer, Answer)
    _log_answer(answer, started, "completions", stream=False)
    body_out = text_completion_body(answer, model=service.model_of(answer), echo=echo)
    return JSONResponse({**body_out, **service.route_fields(answer)})


async def embeddings(request: Request) -> Response:
    """Sentence embeddings from the on-device encoder (see ``embeddings.py``)."""
    service = _service(request)
    if service.embedder is None:
        raise ApiError(
            404, "embeddings are off on this server (ServeOptions.embedding_model)", code="not_found"
        )
    try:
        body = await _read_body(request, service.options.max_body_bytes)
    except ClientDisconnect:
        return Response(status_code=400)
    call = parse_embeddings(body, service.options.max_embedding_inputs)
    started = time.monotonic()
    await _admit(request, service)
    try:
        out = await service.run(partial(service.embedder.run, call))
    except Exception as e:
        raise _api_error(e, param="input") from None
    if log.isEnabledFor(logging.INFO):
        log.info(
            "embeddings: %d input(s), %d tokens in %.0f ms, model %s",
            len(call.texts),
            out["usage"]["prompt_tokens"],
            (time.monotonic() - started) * 1000,
            out["model"],
        )
    return JSONResponse(out)


async def _admit(request: Request, service: Service) -> None:
    """Take a generation slot (the caller's worker gives it back), or answer 429/503."""
    try:
        await _unless_disconnected(request, service.admission.acquire(), on_late=service.admission.release)
    except ServerBusyError as e:
        raise _busy(e) from None


def _log_answer(answer: Answer | None, started: float, what: str, *, stream: bool) -> None:
    """One info line per answered request: what users of llama-server and Ollama look for in a log."""
    if answer is None or not log.isEnabledFor(logging.INFO):
        return
    usage = answer.completion.usage
    log.info(
        "%s%s %s: %d+%d tokens in %.0f ms, route %s",
        what,
        " (stream)" if stream else "",
        answer.finish_reason,
        usage.prompt_tokens,
        usage.completion_tokens,
        (time.monotonic() - started) * 1000,
        answer.route,
    )


class _Shaper(Protocol):
    """What shapes a stream's events: ``schema.ChunkShaper`` (chat) or ``completions.TextShaper``."""

    include_usage: bool

    def first(self) -> dict[str, Any] | None: ...
    def text(self, chunk: Chunk) -> dict[str, Any]: ...
    def finish(self, finish_reason: str) -> dict[str, Any]: ...
    def usage(self, usage: Usage) -> dict[str, Any]: ...


async def _stream_response(
    request: Request,
    service: Service,
    start: Callable[[], Answer | AnswerStream],
    shaper_for: Callable[[str], _Shaper],
    started: float,
    what: str,
) -> Response:
    """Stream what ``start`` makes as SSE; ``shaper_for(model)`` shapes the events, ``what`` names the
    route in the log line."""
    cancel = threading.Event()
    queue = service.stream(start, cancel)
    try:
        first = await _unless_disconnected(request, queue.get())
    except _ClientGone:
        cancel.set()
        raise
    if isinstance(first, BaseException):  # failed before any output: a proper HTTP error
        raise _api_error(first, param="prompt" if what == "completions" else "messages")
    decided = first if isinstance(first, Answer) else None
    if decided is not None:
        first = await queue.get()
    assert not isinstance(first, (BaseException, Answer))  # what follows a decided answer is its text
    shaper = shaper_for(service.model_of(decided))
    events = _sse_events(first, queue, shaper, service, started, what)
    return _SSEResponse(events, on_close=cancel.set)


async def _sse_events(
    first: Chunk | _End,
    queue: asyncio.Queue[_Item],
    shaper: _Shaper,
    service: Service,
    started: float,
    what: str,
) -> AsyncIterator[bytes]:
    opening = shaper.first()
    if opening is not None:
        yield _sse(opening)
    item: _Item = first
    last: Chunk | None = None
    while not isinstance(item, _End):
        if isinstance(item, BaseException):  # after a 200: an error event, and no [DONE]
            yield _sse(_api_error(item).body())
            return
        assert isinstance(item, Chunk)  # an Answer comes first or not at all
        if item.text:
            yield _sse(shaper.text(item))
        if item.finish_reason or item.usage:
            last = item
        item = await queue.get()
    finish = shaper.finish(last.finish_reason if last and last.finish_reason else "stop")
    _log_answer(item.answer, started, what, stream=True)
    yield _sse({**finish, **service.route_fields(item.answer)})
    if shaper.include_usage and last is not None and last.usage is not None:
        yield _sse(shaper.usage(last.usage))
    yield b"data: [DONE]\n\n"


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class _SSEResponse(StreamingResponse):
    """A text/event-stream response that runs ``on_close`` however it ends (done, disconnect, cancel)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def list_models(request: Request) -> Response:
    service = _service(request)
    return JSONResponse({"object": "list", "data": [_model_card(service, n) for n in _model_ids(service)]})


async def get_model(request: Request) -> Response:
    service = _service(request)
    name = request.path_params["model"]
    if name not in _model_ids(service):
        raise ApiError(404, f"the model {name!r} does not exist here", code="model_not_found")
    return JSONResponse(_model_card(service, name))


def _model_ids(service: Service) -> list[str]:
    """The served model, then the embedding model (listed before its first load, which is on demand)."""
    embedder = service.embedder
    return [service.name, *([embedder.name] if embedder and embedder.name != service.name else [])]


def _model_card(service: Service, name: str) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": service.created,
        "owned_by": "edgekit",
    }


async def health(request: Request) -> Response:
    service = _service(request)
    adm = service.admission
    body = {
        "status": "draining" if adm.draining else "ok",
        "model": service.name,
        "active": adm.active,
        "queued": adm.queued,
        "concurrency": adm.concurrency,
        "max_queue": adm.max_queue,
    }
    return JSONResponse(body, status_code=503 if adm.draining else 200)


# --- helpers ---------------------------------------------------------------------------------------------


class _ClientGone(Exception):
    """The client disconnected before its answer started."""


async def _unless_disconnected(
    request: Request, awaitable: Awaitable[T], *, on_late: Callable[[], None] | None = None
) -> T:
    """Await ``awaitable`` unless the client disconnects first (then ``_ClientGone``). ``on_late`` undoes a
    result that arrived just as the client left (a slot handed over, say)."""
    task = asyncio.ensure_future(awaitable)
    watcher = asyncio.ensure_future(_disconnect(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        if on_late is not None:
            on_late()
    raise _ClientGone


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(request: Request, limit: int) -> bytes:
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
        parts.append(part)
    return b"".join(parts)


def _busy(e: ServerBusyError) -> ApiError:
    code = type(e).__name__.removesuffix("Error")
    code = "".join("_" + c.lower() if c.isupper() else c for c in code).lstrip("_")
    return ApiError(
        e.status,
        f"{e.message} (hint: {e.hint})",
        type="rate_limit_error" if e.status == 429 else "server_error",
        code=code,
        headers={"Retry-After": str(e.retry_after)},
    )


def _api_error(e: BaseException, *, param: str = "messages") -> ApiError:
    """Map what a responder raised onto an HTTP error; only edgekit's own messages reach the client.
    ``param``: the field a context overflow is blamed on."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ServerBusyError):
        return _busy(e)
    if isinstance(e, InputError):
        overflow = isinstance(e, ContextOverflowError)
        code = "context_length_exceeded" if overflow else "invalid_value"
        blamed = param if overflow else None
        hint = next((h for c, h in _HTTP_HINTS.items() if type(e) is c and e.hint == c.default_hint), e.hint)
        return ApiError(400, f"{e.message} (hint: {hint})", param=blamed, code=code)
    if isinstance(e, RemoteError):
        return ApiError(502, str(e), type="server_error", code="upstream_error")
    if isinstance(e, EdgekitError):
        return ApiError(500, str(e), type="server_error", code=type(e).__name__)
    log.error("unexpected %s while answering: %s", type(e).__name__, e, exc_info=e)
    return ApiError(
        500, "internal error while generating the answer", type="server_error", code="internal_error"
    )


async def _api_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error_response(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    error = ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code)
    return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)


async def _client_gone_response(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nobody reads it: the client left


class BearerAuth:
    """Pure ASGI middleware: paths under /v1 need ``Authorization: Bearer <key>`` (compared in constant
    time); everything else (health) stays open. Runs before the body is read."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self._key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._key is None or scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send 'Authorization: Bearer <key>'" if not header else "invalid API key"
        error = ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        await JSONResponse(error.body(), status_code=401, headers=error.headers)(scope, receive, send)


def create_app(target: Assistant | Responder, options: ServeOptions | None = None) -> Starlette:
    """The ASGI app serving an ``Assistant`` (``edgekit serve`` builds one with as many engine copies as
    ``--concurrency``), or a bare responder (anything with ``edgekit.Model``'s ``chat``), which is then
    taken to be thread-safe. It closes what it serves at lifespan shutdown.

    ``app.state.service.begin_shutdown()`` (thread- and signal-safe) stops admitting new work; the
    server running the app is expected to stop accepting connections and let running requests finish.
    """
    options = options or ServeOptions()
    assistant = target if isinstance(target, Assistant) else Assistant([target] * options.concurrency)
    service = Service(assistant, options)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.loop = asyncio.get_running_loop()
        yield
        await service.shutdown()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", get_model, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        exception_handlers={
            ApiError: _api_error_response,
            HTTPException: _http_error_response,
            _ClientGone: _client_gone_response,
        },
        middleware=[Middleware(BearerAuth, api_key=options.api_key)],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
