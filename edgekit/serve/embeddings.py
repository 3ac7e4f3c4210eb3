"""OpenAI embeddings at the HTTP edge (``POST /v1/embeddings``): the request body, the on-device sentence
encoder behind it, and the response body.

The encoder is a models.lock entry with role ``encoder`` (default ``multilingual-e5-small-int8``, the
safety classifier's, about 100 languages; ``edgekit.runtime.encoder`` builds or pulls it through the model
store and adds the prefix the model expects). It loads on the first embeddings request, in the worker that
runs it; one that cannot be built answers 503 with the reason and its hint. Vectors are float32, mean
pooled and L2-normalized, as floats or as base64 of their little-endian bytes (``encoding_format``; the
official SDK asks for base64 and decodes it). ``usage.prompt_tokens`` counts the tokens the encoder read
(its prefix and special tokens included). ``model`` may name anything, as for chat: the response says which
model embedded.

Refused with a 400 naming the field: token-id input (its ids would be another model's vocabulary),
``dimensions`` other than the model's own, an empty text, a text longer than the encoder reads (it is
never cut silently), more inputs or tokens than the server's limits (``ServeOptions``).
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgekit.errors import EdgekitError
from edgekit.serve.schema import ApiError, validation_error

if TYPE_CHECKING:
    import numpy as np

    from edgekit.runtime.encoder import Encoder

log = logging.getLogger("edgekit.serve")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    input: str | list[Any]
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None


@dataclass(frozen=True)
class EmbedCall:
    texts: tuple[str, ...]
    single: bool
    """``input`` was one string (errors then name ``input``, else ``input[i]``)."""
    base64: bool
    dimensions: int | None

    def param(self, i: int) -> str:
        return "input" if self.single else f"input[{i}]"


def parse_embeddings(body: bytes, max_inputs: int) -> EmbedCall:
    """Validate an embeddings body; every problem is an ``ApiError`` 400 naming the field."""
    try:
        req = EmbeddingRequest.model_validate_json(body)
    except ValidationError as e:
        raise validation_error(e) from None
    single = isinstance(req.input, str)
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not texts:
        raise ApiError(
            400, "input is an empty list: send at least one text", param="input", code="invalid_value"
        )
    if all(isinstance(t, (int, list)) for t in texts):
        raise ApiError(
            400,
            "input as token ids is not supported: the embedding model has its own vocabulary, so send the "
            "text (LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)",
            param="input",
            code="unsupported_parameter",
        )
    if len(texts) > max_inputs:
        raise ApiError(
            400,
            f"input has {len(texts)} texts; this server embeds at most {max_inputs} per request "
            "(send them in smaller batches)",
            param="input",
            code="too_many_inputs",
        )
    call = EmbedCall(tuple(texts), single, req.encoding_format == "base64", req.dimensions)
    for i, text in enumerate(texts):
        _check_text(call, i, text)
    return call


def _check_text(call: EmbedCall, i: int, text: object) -> None:
    if not isinstance(text, str):
        raise ApiError(400, f"{call.param(i)} must be a string", param=call.param(i), code="invalid_type")
    if not text.strip():
        raise ApiError(400, f"{call.param(i)} is empty", param=call.param(i), code="invalid_value")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400, f"{call.param(i)} is not valid UTF-8", param=call.param(i), code="invalid_value"
        ) from None


class Embedder:
    """The sentence encoder behind /v1/embeddings: loaded once, on the first request, in its worker (so the
    event loop never waits on a build); ONNX sessions are thread-safe, so workers share it."""

    def __init__(self, name: str, *, max_tokens: int) -> None:
        self.name = name
        self.max_tokens = max_tokens
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    def encoder(self) -> Encoder:
        with self._lock:  # one build at a time; a failed one is tried again by the next request
            if self._encoder is None:
                self._encoder = self._load()
            return self._encoder

    def _load(self) -> Encoder:
        try:
            from edgekit.runtime.encoder import shared_encoder

            return shared_encoder(self.name)
        except EdgekitError as e:
            message, hint = e.message, e.hint
        except Exception as e:  # a native or packaging failure: its name, never a traceback
            log.error("cannot load the embedding model %s: %s", self.name, e, exc_info=e)
            message, hint = f"{type(e).__name__}: {str(e)[:200]}", "See the server's log."
        raise ApiError(
            503,
            f"the embedding model {self.name} cannot be loaded: {message} (hint: {hint})",
            type="server_error",
            code="embeddings_unavailable",
        )

    def run(self, call: EmbedCall) -> dict[str, Any]:
        """The response body for ``call`` (loads the encoder on first use)."""
        encoder = self.encoder()
        if call.dimensions is not None and call.dimensions != encoder.dim:
            raise ApiError(
                400,
                f"dimensions {call.dimensions} is not supported: {self.name} makes {encoder.dim}-dimensional "
                f"embeddings and cannot shorten them (leave dimensions out, or set it to {encoder.dim})",
                param="dimensions",
                code="unsupported_parameter",
            )
        tokens = sum(self._tokens(encoder, call, i) for i in range(len(call.texts)))
        if tokens > self.max_tokens:
            raise ApiError(
                400,
                f"the inputs are {tokens} tokens; this server embeds at most {self.max_tokens} per request "
                "(send them in smaller batches)",
                param="input",
                code="too_many_tokens",
            )
        vectors = encoder.embed(call.texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(v, call.base64)}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": self.name, "usage": usage}

    def _tokens(self, encoder: Encoder, call: EmbedCall, i: int) -> int:
        """Tokens the encoder reads for text ``i`` (a 400 when it would have to cut the text)."""
        enc = encoder.tokenizer.encode(encoder.prefix + call.texts[i])
        if enc.overflowing:
            raise ApiError(
                400,
                f"{call.param(i)} is longer than the {encoder.max_tokens} tokens {self.name} reads "
                f"(split it, about {encoder.max_tokens * 3} characters of English a piece)",
                param=call.param(i),
                code="context_length_exceeded",
            )
        return len(enc.ids)


def _vector(v: np.ndarray, as_base64: bool) -> list[float] | str:
    if as_base64:  # what the official SDK asks for: float32, little-endian
        return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
    out: list[float] = v.tolist()
    return out
