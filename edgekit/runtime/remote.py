"""RemoteBackend: an OpenAI-compatible HTTP endpoint (``POST {base_url}/chat/completions``).

The remote is a black box: no logits (token signals carry text only), no grammars. Every failure is
mapped onto the ``RemoteError`` tree with ``retryable`` set, and no httpx exception escapes. The API key
is read from an environment variable once, sent as a bearer token, and kept out of repr(), messages and
exceptions (a server that echoes it back gets it masked).
"""

from __future__ import annotations

import codecs
import email.utils
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx

from edgekit.errors import (
    InputError,
    RemoteAuthError,
    RemoteError,
    RemoteProtocolError,
    RemoteRateLimitError,
    RemoteRequestError,
    RemoteServerError,
    RemoteTimeoutError,
    RemoteUnreachableError,
)
from edgekit.runtime.base import BackendBase, Capabilities
from edgekit.runtime.types import (
    ChatMessage,
    Chunk,
    Completion,
    GenerationParams,
    Timings,
    TokenSignal,
    Usage,
)

_MAX_DETAIL = 200
_CUT_HINT = (
    "The connection dropped before the answer was complete; retry, or check proxies between you and it."
)


def _display_url(url: str) -> str:
    """The URL without user info, query or fragment: safe to put in messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _truncate(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Split a byte stream into lines on CRLF, LF or CR (as SSE requires), across chunk boundaries."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buf = ""
    for raw in chunks:
        buf += decoder.decode(raw)
        while True:
            cut = min((i for i in (buf.find("\r"), buf.find("\n")) if i >= 0), default=-1)
            # A trailing CR may be the first half of a CRLF that the next chunk completes.
            if cut < 0 or (buf[cut] == "\r" and cut == len(buf) - 1):
                break
            yield buf[:cut]
            buf = buf[cut + 2 :] if buf.startswith("\r\n", cut) else buf[cut + 1 :]
    buf += decoder.decode(b"", final=True)
    if buf.endswith("\r"):
        buf = buf[:-1]
        yield buf
        buf = ""
    if buf:
        yield buf


def iter_sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The data payload of each server-sent event in a byte stream.

    Follows the SSE rules that matter here: ``:`` comment lines and fields other than ``data`` (event, id,
    retry) are ignored, several ``data:`` lines in one event are joined with newlines, a blank line ends an
    event, and events with no data are skipped. An event cut off by the end of the stream is still
    delivered (lenient: some servers omit the blank line after the final ``data: [DONE]``).
    """
    data: list[str] = []
    for line in _iter_lines(chunks):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
    if data:
        yield "\n".join(data)


class RemoteBackend(BackendBase):
    """An OpenAI-compatible chat completions endpoint, streamed over SSE."""

    name = "remote"
    capabilities = Capabilities(
        grammar=False, logprobs=False, stream=True, local=False, structured="response_format"
    )
    n_ctx = 0

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "EDGEKIT_REMOTE_API_KEY",
        timeout: float | httpx.Timeout = 60.0,
        connect_timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        base = (base_url or "").strip()
        try:
            parsed = httpx.URL(base)
        except Exception as exc:  # httpx.InvalidURL and friends
            raise InputError(
                f"bad remote URL {_display_url(base)!r}: {exc}", "Give an http(s) URL ending in /v1."
            ) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InputError(
                f"bad remote URL {_display_url(base)!r}: need an http:// or https:// URL with a host",
                "Give an http(s) URL ending in /v1, for example http://127.0.0.1:8080/v1.",
            )
        self._base = parsed.copy_with(path=parsed.path.rstrip("/"), fragment=None)
        if not model:
            raise InputError("the remote model id is empty", "Name the model the endpoint should serve.")
        self.base_url = str(self._base)
        self.model_id = model
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
        if key and not (key.isascii() and key.isprintable()):
            # Checked here so that httpx's header encoding error (which carries the value) never surfaces.
            raise InputError(
                f"the API key in ${api_key_env} has characters an HTTP header cannot carry",
                f"Set {api_key_env} to the key alone (printable ASCII, no quotes or newlines).",
            )
        self._secrets: tuple[str, ...] = (key,) if key else ()
        if isinstance(timeout, httpx.Timeout):
            self.timeout = timeout
        else:
            self.timeout = httpx.Timeout(float(timeout), connect=float(connect_timeout))
        hdrs: dict[str, str] = {"Accept": "application/json", **(headers or {})}
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=self.timeout, headers=hdrs, transport=transport)

    @property
    def has_api_key(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        key = "set" if self._secrets else "unset"
        return (
            f"RemoteBackend(base_url={_display_url(self.base_url)!r}, model={self.model_id!r}, "
            f"api_key_env={self.api_key_env!r} ({key}))"
        )

    def close(self) -> None:
        self._client.close()

    def _endpoint(self, suffix: str) -> str:
        """``base_url`` + ``suffix`` on the path, keeping any query the base URL carries."""
        return str(self._base.copy_with(path=self._base.path + suffix))

    # --- public API ---------------------------------------------------------------------------

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        url = self._endpoint("/chat/completions")
        body = self._body(messages, params, stream=True)
        with self._guard(url):
            resp = self._send(
                "POST", url, body, accept="text/event-stream", stream=True, timeout=params.timeout_s
            )
            try:
                self._check_status(resp, url)
                ctype = resp.headers.get("content-type", "").lower()
                if ctype.startswith("application/json"):
                    # A server that ignores "stream": true answers with one JSON completion.
                    resp.read()
                    comp = self._parse_completion(self._json(resp, url), url)
                    yield Chunk(comp.text, signals=comp.signals)
                    yield Chunk("", finish_reason=comp.finish_reason, usage=comp.usage)
                    return
                if "html" in ctype:
                    self._fail(
                        RemoteProtocolError, url, f"answered with an HTML page ({ctype}), not a stream"
                    )
                with self._guard(url, in_body=True):
                    yield from self._parse_stream(_within(resp.iter_bytes(), params.timeout_s, url), url)
            finally:
                resp.close()

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        """One non-streaming request (``"stream": false``); for servers or proxies that cannot stream."""
        url = self._endpoint("/chat/completions")
        started = time.perf_counter()
        with self._guard(url):
            resp = self._send(
                "POST", url, self._body(messages, params, stream=False), timeout=params.timeout_s
            )
        self._check_status(resp, url)
        comp = self._parse_completion(self._json(resp, url), url)
        total = time.perf_counter() - started
        timings = Timings(ttft_s=total, total_s=total, completion_tokens=comp.usage.completion_tokens)
        return Completion(
            comp.text, comp.finish_reason, comp.usage, timings, self.model_id, self.name, comp.signals
        )

    def models(self) -> list[str]:
        """The model ids the endpoint lists at ``/models`` (a cheap health check)."""
        url = self._endpoint("/models")
        with self._guard(url):
            resp = self._send("GET", url)
        self._check_status(resp, url)
        obj = self._json(resp, url)
        data = obj.get("data")
        if not isinstance(data, list) or not all(
            isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
        ):
            self._fail(RemoteProtocolError, url, "answered /models without a 'data' list of models with ids")
        return [m["id"] for m in data]

    # --- request ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        *,
        accept: str | None = None,
        stream: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send once, and once more if the connection died before any response came back.

        A server may close a kept-alive connection just as httpx picks it from the pool (llama_cpp.server
        does so right after a stream it aborted); the request then fails with no response at all, and in
        that case it almost never reached the model, so one immediate retry on a fresh connection is what
        clients (the OpenAI SDK included) do. Connect errors, timeouts and any failure after the response
        started are not retried here: they are reported, with ``retryable`` set, for the caller to decide.
        """
        headers = {"Accept": accept} if accept else None
        for attempt in (1, 2):
            request = self._client.build_request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=self.timeout
                if timeout is None
                else httpx.Timeout(timeout, connect=self.timeout.connect),
            )
            try:
                return self._client.send(request, stream=stream)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _body(
        self, messages: Sequence[ChatMessage], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [dict(m) for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.response_format is not None:
            fmt = params.response_format
            schema = json.loads(fmt.schema)
            body["response_format"] = (
                {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": schema, "strict": True}}
                if fmt.style == "json_schema"
                else {"type": "json_object", "schema": schema}
            )
        return body

    # --- response -----------------------------------------------------------------------------

    def _parse_stream(self, chunks: Iterable[bytes], url: str) -> Iterator[Chunk]:
        finish: str | None = None
        usage: Usage | None = None
        deltas = 0
        done = False
        for data in iter_sse_data(chunks):
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                obj = json.loads(data)
            except ValueError:
                self._fail(
                    RemoteProtocolError,
                    url,
                    f"sent malformed JSON in the event stream: {_truncate(data, 120)!r}",
                )
            if not isinstance(obj, dict):
                self._fail(
                    RemoteProtocolError,
                    url,
                    f"sent a stream event that is not a JSON object: {_truncate(data, 120)!r}",
                )
            if "error" in obj:
                self._fail(RemoteServerError, url, f"reported an error mid-stream: {self._detail_of(obj)}")
            if obj.get("usage") is not None:
                usage = self._parse_usage(obj["usage"], url)
            choices = obj.get("choices")
            if choices is None:
                choices = []
            if not isinstance(choices, list):
                self._fail(RemoteProtocolError, url, "sent a stream event whose 'choices' is not a list")
            for choice in choices:
                if not isinstance(choice, dict):
                    self._fail(RemoteProtocolError, url, "sent a stream choice that is not an object")
                if choice.get("index", 0) != 0:
                    continue  # n > 1 is never requested; ignore extra choices defensively
                delta = choice.get("delta")
                if delta is None:
                    delta = {}
                if not isinstance(delta, dict):
                    self._fail(
                        RemoteProtocolError, url, "sent a stream choice whose 'delta' is not an object"
                    )
                content = delta.get("content")
                if content is not None and not isinstance(content, str):
                    self._fail(RemoteProtocolError, url, "sent a delta whose 'content' is not a string")
                if content:
                    deltas += 1
                    yield Chunk(content, signals=(TokenSignal(content),))
                reason = choice.get("finish_reason")
                if reason:
                    finish = str(reason)
        if not done and finish is None:
            self._fail(
                RemoteProtocolError,
                url,
                "stream ended early: the connection closed before [DONE] or a finish_reason",
                hint=_CUT_HINT,
            )
        yield Chunk(
            "",
            finish_reason=finish or "stop",
            usage=usage if usage is not None else Usage(prompt_tokens=0, completion_tokens=deltas),
        )

    def _parse_completion(self, obj: dict[str, Any], url: str) -> Completion:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            self._fail(RemoteProtocolError, url, "answered without a 'choices' list")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if content is None:
            content = ""
        if not isinstance(content, str):
            self._fail(RemoteProtocolError, url, "answered with a message whose 'content' is not a string")
        raw_usage = obj.get("usage")
        usage = (
            self._parse_usage(raw_usage, url)
            if raw_usage is not None
            else Usage(prompt_tokens=0, completion_tokens=1 if content else 0)
        )
        finish = str(choices[0].get("finish_reason") or "stop")
        signals = (TokenSignal(content),) if content else ()
        zero = Timings(0.0, 0.0, usage.completion_tokens)
        return Completion(content, finish, usage, zero, self.model_id, self.name, signals)

    def _parse_usage(self, raw: object, url: str) -> Usage:
        if not isinstance(raw, dict):
            self._fail(RemoteProtocolError, url, "sent a 'usage' that is not an object")
        prompt, completion = raw.get("prompt_tokens", 0), raw.get("completion_tokens", 0)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (prompt, completion)):
            self._fail(
                RemoteProtocolError, url, "sent token counts in 'usage' that are not non-negative integers"
            )
        return Usage(prompt_tokens=prompt, completion_tokens=completion)

    def _json(self, resp: httpx.Response, url: str) -> dict[str, Any]:
        try:
            obj = json.loads(resp.content)
        except ValueError:
            ctype = resp.headers.get("content-type", "?")
            self._fail(RemoteProtocolError, url, f"answered with a body that is not JSON ({ctype})")
        if not isinstance(obj, dict):
            self._fail(RemoteProtocolError, url, "answered with JSON that is not an object")
        return obj

    # --- errors -----------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fail(
        self,
        cls: type[RemoteError],
        url: str,
        what: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> NoReturn:
        err = cls(self._redact(f"{_display_url(url)} {what}"), hint, status=status)
        if retry_after is not None or status is not None:
            err.retry_after = retry_after  # type: ignore[attr-defined]
        raise err

    def _detail_of(self, obj: object) -> str:
        """The server's own error text from an OpenAI-style (or FastAPI-style) error body."""
        detail: object = None
        if isinstance(obj, dict):
            err = obj.get("error")
            if isinstance(err, dict):
                detail = err.get("message") or err.get("type") or err.get("code")
            elif isinstance(err, str):
                detail = err
            if detail is None:
                detail = obj.get("message") or obj.get("detail")
        if detail is None:
            return ""
        text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
        return _truncate(self._redact(text))

    def _check_status(self, resp: httpx.Response, url: str) -> None:
        status = resp.status_code
        if 200 <= status < 300:
            return
        resp.read()
        try:
            detail = self._detail_of(json.loads(resp.content))
        except ValueError:
            ctype = resp.headers.get("content-type", "")
            detail = "" if "html" in ctype else _truncate(self._redact(resp.text))
        what = f"answered HTTP {status}" + (f": {detail}" if detail else "")
        retry_after = _retry_after(resp.headers.get("retry-after"))
        if status in (401, 403):
            self._fail(RemoteAuthError, url, what, status=status)
        if status == 429:
            if retry_after is not None:
                what += f" (retry after {retry_after:g}s)"
            self._fail(RemoteRateLimitError, url, what, status=status, retry_after=retry_after)
        if status >= 500:
            self._fail(RemoteServerError, url, what, status=status, retry_after=retry_after)
        if status >= 400:
            self._fail(RemoteRequestError, url, what, status=status)
        location = resp.headers.get("location")
        if location:
            what += f" redirecting to {_display_url(location)}; point the base URL there"
        self._fail(RemoteProtocolError, url, what, status=status)

    @contextmanager
    def _guard(self, url: str, *, in_body: bool = False) -> Iterator[None]:
        """Map httpx failures onto RemoteError. ``in_body``: the response had started streaming."""
        try:
            yield
        except httpx.TimeoutException as exc:
            try:  # the request's own limits (a per-request timeout overrides the client's)
                limits = dict(exc.request.extensions.get("timeout") or {})
            except RuntimeError:  # no request attached
                limits = {}
            t = self.timeout
            kind = {
                httpx.ConnectTimeout: f"connect timeout {limits.get('connect', t.connect)}s",
                httpx.ReadTimeout: f"read timeout {limits.get('read', t.read)}s",
                httpx.WriteTimeout: f"write timeout {limits.get('write', t.write)}s",
                httpx.PoolTimeout: f"pool timeout {limits.get('pool', t.pool)}s",
            }.get(type(exc), "timeout")
            where = "stopped sending mid-stream" if in_body else "did not answer in time"
            self._fail(RemoteTimeoutError, url, f"{where} ({kind})")
        except httpx.ConnectError as exc:
            self._fail(RemoteUnreachableError, url, f"is unreachable: {self._net_detail(exc)}")
        except httpx.TransportError as exc:
            if in_body:
                self._fail(
                    RemoteProtocolError,
                    url,
                    f"stream ended early: the connection broke ({self._net_detail(exc)})",
                    hint=_CUT_HINT,
                )
            if isinstance(exc, httpx.RemoteProtocolError):
                self._fail(
                    RemoteProtocolError,
                    url,
                    f"broke the HTTP protocol: {self._net_detail(exc)}",
                    hint="The server dropped the connection without answering; check its logs, then retry.",
                )
            self._fail(RemoteUnreachableError, url, f"could not be reached: {self._net_detail(exc)}")
        except httpx.HTTPError as exc:  # anything else httpx raises (decoding, stream consumed...)
            self._fail(RemoteProtocolError, url, f"failed: {self._net_detail(exc)}")

    def _net_detail(self, exc: Exception) -> str:
        return _truncate(self._redact(str(exc) or type(exc).__name__))


def _within(chunks: Iterable[bytes], seconds: float | None, url: str) -> Iterator[bytes]:
    """``chunks`` until ``seconds`` have passed since the first was asked for: the request's timeout is
    a deadline for the whole answer, not only for each read (a server trickling a token every few
    seconds would otherwise hold the request for ever)."""
    if seconds is None:
        yield from chunks
        return
    deadline = time.monotonic() + seconds
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise RemoteTimeoutError(f"{_display_url(url)} sent no complete answer within {seconds:g}s")
        yield chunk
