"""The public Python API: load a model by models.lock name or path, chat with it, pull and list models.

import edgekit
with edgekit.load() as model:                      # the default model, pulled and verified on first use
    print(model.chat("Name three primary colors.").text)
    for chunk in model.chat([{"role": "user", "content": "Hi"}], stream=True):
        print(chunk.text, end="")
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from edgekit.config import Settings
from edgekit.errors import InputError, ModelFileError
from edgekit.files import ProgressFn, no_progress
from edgekit.models.edit import remove_entry
from edgekit.models.lock import FileSource, Lockfile
from edgekit.models.resolve import fetch, locate
from edgekit.models.store import EntryStatus, ModelStore, Removal
from edgekit.models.verify import VerifyMemo
from edgekit.runtime.base import Backend
from edgekit.runtime.types import (
    ChatMessage,
    Chunk,
    Completion,
    GenerationParams,
    collect,
    estimate_tokens,
    normalize_messages,
)

if TYPE_CHECKING:
    from edgekit.schema import JsonResult, Tool, ToolCall


class Model:
    """A loaded model. ``chat`` takes a prompt string or a list of messages."""

    def __init__(self, backend: Backend, *, name: str, path: Path | None = None) -> None:
        self.backend = backend
        self.name = name
        self.path = path

    @property
    def n_ctx(self) -> int:
        return self.backend.n_ctx

    def prompt_tokens(self, messages: str | Sequence[ChatMessage], *, system: str | None = None) -> int:
        """Tokens the chat prompt takes with this model's template and tokenizer where the backend has
        them (llama.cpp), else an estimate of four characters a token (ONNX, remote)."""
        msgs = normalize_messages(messages, system)
        counted = self.backend.count_prompt_tokens(msgs)
        return counted if counted is not None else estimate_tokens(msgs)

    @overload
    def chat(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: Literal[False] = ...,
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
        schema: Any = ...,
        timeout: float | None = ...,
    ) -> Completion: ...

    @overload
    def chat(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: Literal[True],
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
        schema: Any = ...,
        timeout: float | None = ...,
    ) -> Iterator[Chunk]: ...

    @overload
    def chat(  # ``stream`` known only at run time (a server relaying a request's "stream" field)
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: bool,
        system: str | None = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
        schema: Any = ...,
        timeout: float | None = ...,
    ) -> Completion | Iterator[Chunk]: ...

    def chat(
        self,
        messages: str | Sequence[ChatMessage],
        *,
        stream: bool = False,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 40,
        seed: int | None = None,
        stop: Sequence[str] = (),
        schema: Any = None,
        timeout: float | None = None,
    ) -> Completion | Iterator[Chunk]:
        """Answer ``messages``. With ``schema`` (JSON schema dict, JSON text, path, pydantic model or
        CompiledSchema) the reply is JSON matching it, validated before it is returned (see
        ``generate_json``); a reply that never matches raises SchemaOutputError. ``timeout`` (seconds)
        bounds a remote request; local backends ignore it."""
        msgs = normalize_messages(messages, system)
        params = GenerationParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
            stop=tuple(stop),
            timeout_s=timeout,
        )
        if schema is not None:
            from edgekit.schema import compile_schema, generate_json, stream_json

            compiled = compile_schema(schema)
            if stream:
                return stream_json(self.backend, msgs, compiled, params)
            return generate_json(self.backend, msgs, compiled, params).completion
        if stream:
            return self.backend.stream(msgs, params)
        return self.backend.chat(msgs, params)

    @overload
    def complete(
        self,
        prompt: str,
        *,
        stream: Literal[False] = ...,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> Completion: ...

    @overload
    def complete(
        self,
        prompt: str,
        *,
        stream: Literal[True],
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> Iterator[Chunk]: ...

    @overload
    def complete(
        self,
        prompt: str,
        *,
        stream: bool,
        max_tokens: int = ...,
        temperature: float = ...,
        top_p: float = ...,
        top_k: int = ...,
        seed: int | None = ...,
        stop: Sequence[str] = ...,
    ) -> Completion | Iterator[Chunk]: ...

    def complete(
        self,
        prompt: str,
        *,
        stream: bool = False,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 40,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> Completion | Iterator[Chunk]:
        """Continue ``prompt`` as plain text, with no chat template (what a base model is for, and what
        the legacy completions API asks). Local backends only: a remote one raises ``InputError``."""
        if not isinstance(prompt, str):
            raise InputError(f"the prompt must be a string, not {type(prompt).__name__}")
        text = normalize_messages(prompt)[0]["content"]  # valid UTF-8 and not blank
        params = GenerationParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
            stop=tuple(stop),
        )
        stream_text = getattr(self.backend, "stream_text", None)
        if stream_text is None:  # a Backend that is not a BackendBase and has no text completion
            raise InputError(
                f"the {self.backend.name} backend cannot continue plain text, only chat",
                "Use chat, or load a local GGUF or ONNX model.",
            )
        started = time.perf_counter()
        chunks: Iterator[Chunk] = stream_text(text, params)
        if stream:
            return chunks
        return collect(chunks, model=self.backend.model_id, backend=self.backend.name, started=started)

    def generate_json(
        self,
        messages: str | Sequence[ChatMessage],
        schema: Any,
        *,
        system: str | None = None,
        strict: bool = False,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int | None = None,
        repairs: int = 2,
    ) -> JsonResult:
        """A value matching ``schema``: constrained decoding where the backend can, validated always, and
        repaired up to ``repairs`` times. ``strict`` refuses schemas with keywords the grammar cannot
        enforce. Raises SchemaError for a bad schema and SchemaOutputError when no reply matches."""
        from edgekit.schema import compile_schema, generate_json

        params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        compiled = compile_schema(schema, strict=strict)
        msgs = normalize_messages(messages, system)
        return generate_json(self.backend, msgs, compiled, params, repairs=repairs)

    def call_tool(
        self,
        messages: str | Sequence[ChatMessage],
        tools: Sequence[Tool | Mapping[str, Any]],
        *,
        guard: Any = None,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.7,
        seed: int | None = None,
        repairs: int = 2,
    ) -> ToolCall:
        """Have the model call one of ``tools`` (Tool objects or OpenAI tool dicts). The arguments are
        constrained and validated against the tool's schema, and checked by ``guard`` (an edgekit.Guard)
        before anything runs: a blocked call comes back with ``blocked=True``."""
        from edgekit.schema import Tool, call_tool

        specs = [t if isinstance(t, Tool) else Tool.from_openai(t) for t in tools]
        params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
        msgs = normalize_messages(messages, system)
        return call_tool(self.backend, msgs, specs, params, guard=guard, repairs=repairs)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Model({self.name!r}, backend={self.backend.name!r}, n_ctx={self.n_ctx})"


def load(
    model: str | Path | None = None,
    *,
    n_ctx: int | None = None,
    threads: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFn = no_progress,
) -> Model:
    """Load a models.lock entry (default: the lock's default) or a GGUF file / ONNX folder path.

    Lock entries are pulled on first use and their sha256 is checked before the first load.
    """
    settings = settings or Settings.from_env()
    threads = threads or settings.threads
    art = locate(model, settings=settings)
    entry = art.entry
    if entry is not None and (entry.format in ("hf", "data") or entry.role == "encoder"):
        what = "in Hugging Face format" if entry.format == "hf" else f"({entry.format})"
        raise InputError(
            f"{entry.name} is a {entry.role} model {what}, not a chat model",
            "Pick a chat model from 'edgekit models list'.",
        )
    art = fetch(art, settings=settings, progress=progress, hash_path=False)
    return Model(_open_path(art.path, settings, n_ctx, threads, art.name), name=art.name, path=art.path)


def _open_path(
    path: Path, settings: Settings, n_ctx: int | None, threads: int | None, model_id: str
) -> Backend:
    if not (path.is_dir() or path.is_file()):  # a FIFO or device would block the header read forever
        raise ModelFileError(
            f"{path}: not a regular file or folder", "Point at a GGUF file or an ONNX model folder."
        )
    if path.is_dir():
        from edgekit.runtime.onnx import OnnxBackend

        return OnnxBackend(path, model_id=model_id, n_ctx=n_ctx, threads=threads)
    from edgekit.runtime.gguf import read_gguf_cached
    from edgekit.runtime.llamacpp import LlamaCppBackend
    from edgekit.runtime.llamacpp_fields import check_model
    from edgekit.runtime.probe import probe_tokenizer

    info = read_gguf_cached(path, settings.cache_dir)
    check_model(path, info)  # fields llama.cpp aborts on, before the probe's child or llama.cpp reads them
    probed = VerifyMemo(settings.cache_dir / "tokenizer-ok.json")
    if not probed.known(path, "ok"):
        probe_tokenizer(path, info=info)
        probed.remember(path, "ok")
    return LlamaCppBackend(path, model_id=model_id, n_ctx=n_ctx, threads=threads, info=info)


def remote(
    base_url: str | None, model: str, *, api_key_env: str | None = None, timeout: float = 60.0
) -> Model:
    """A Model backed by an OpenAI-compatible endpoint; ``base_url`` (ending in /v1) defaults to
    EDGEKIT_REMOTE_URL, and the key is read from ``api_key_env`` (default EDGEKIT_REMOTE_API_KEY)."""
    from edgekit.runtime.remote import RemoteBackend

    settings = Settings.from_env()
    url = base_url or settings.remote_url
    if not url:
        raise InputError(
            "no remote endpoint given", "Pass base_url or set EDGEKIT_REMOTE_URL to the server's /v1 URL."
        )
    backend = RemoteBackend(
        url, model, api_key_env=api_key_env or settings.remote_api_key_env, timeout=timeout
    )
    return Model(backend, name=model)


def pull(
    name: str | None = None,
    *,
    force: bool = False,
    settings: Settings | None = None,
    progress: ProgressFn = no_progress,
) -> Path:
    """Download (or find in the cache) and verify a models.lock entry; returns its path."""
    return ModelStore(settings).pull(name, force=force, progress=progress)


def list_models(settings: Settings | None = None) -> list[EntryStatus]:
    store = ModelStore(settings)
    return [store.status(e) for e in store.lock]


def verify(
    name: str | None = None, *, settings: Settings | None = None, progress: ProgressFn = no_progress
) -> Path:
    return ModelStore(settings).verify(name, progress)


def remove_model(name: str, *, unpin: bool = False, settings: Settings | None = None) -> Removal:
    """Delete the cached artifact of ``name`` (a later pull or load fetches it again). ``unpin`` also
    deletes its models.lock entry, for entries a user added or derived (a local-file source); a user's
    own file is never deleted."""
    settings = settings or Settings.from_env()
    store = ModelStore(settings)
    entry = store.lock.get(name)
    if unpin and not isinstance(entry.source, FileSource):
        raise InputError(
            f"{name} is pinned to its {entry.source.kind} source, not added or derived here",
            "Remove only the cached copy (leave out unpin); edit models.lock to drop a shipped entry.",
        )
    if unpin:  # the lock loses the entry first: it refuses (default model, build input) before any delete
        remove_entry(settings.lock_path, name)
    return store.remove(name)


def model_info(name: str | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Everything known about one entry without loading it: the models.lock entry (provenance included),
    where it is, whether it is cached and verified, and for a cached GGUF its architecture, context
    length and whether it carries a chat template."""
    store = ModelStore(settings)
    status = store.status(store.lock.get(name))
    info: dict[str, Any] = {
        **status.entry.model_dump(mode="json", exclude_none=True, by_alias=True),
        "path": str(status.path),
        "cached": status.cached,
        "verified": status.verified,
        "default": status.entry.name == store.lock.default,
    }
    if status.cached and status.entry.format == "gguf" and status.path.is_file():
        from edgekit.runtime.gguf import read_gguf

        try:
            header = read_gguf(status.path)
        except ModelFileError as e:  # show the entry anyway; say why the header is not shown
            info["gguf"] = {"error": e.message}
            return info
        info["gguf"] = {
            "architecture": header.architecture,
            "context_length": header.context_length,
            "chat_template": header.chat_template is not None,
            "tensors": header.n_tensors,
        }
    return info


def lockfile(settings: Settings | None = None) -> Lockfile:
    return Lockfile.load((settings or Settings.from_env()).lock_path)
