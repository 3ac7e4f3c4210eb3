"""RemoteBackend against a real OpenAI-compatible server edgekit did not write: llama_cpp.server.

One server process per module, serving the default GGUF on a free loopback port with an API key. When the
server fails to start, or dies under a test, the failure shows its exit status and the tail of its log.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import edgekit
from edgekit.errors import RemoteAuthError, RemoteError, RemoteProtocolError, RemoteRequestError
from edgekit.runtime.remote import RemoteBackend
from edgekit.runtime.types import ChatMessage, GenerationParams

from ..servers import LlamaServer
from ..servers import llama_server as start_llama_server

pytestmark = pytest.mark.model

KEY_ENV = "EDGEKIT_TEST_LLAMA_SERVER_KEY"
PROMPT: list[ChatMessage] = [{"role": "user", "content": "Name three colours of the rainbow."}]


@pytest.fixture(scope="module")
def llama_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    model: Path = request.getfixturevalue("default_model_path")
    started = time.monotonic()
    with start_llama_server(model, tmp_path_factory.mktemp("llama_server")) as server:
        sys.stderr.write(f"\nllama_cpp.server ready in {time.monotonic() - started:.1f}s\n")
        yield server


@pytest.fixture
def remote(llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemoteBackend]:
    monkeypatch.setenv(KEY_ENV, llama_server.api_key)
    with RemoteBackend(llama_server.base_url, llama_server.model_id, api_key_env=KEY_ENV, timeout=120) as b:
        yield b
    if llama_server.proc.poll() is not None:
        pytest.fail(f"the server died during the test. {llama_server.diagnose()}")


def _alive(server: LlamaServer, err: BaseException) -> str:
    return f"{err}\n{server.diagnose()}"


def test_models_lists_the_served_model(remote: RemoteBackend, llama_server: LlamaServer) -> None:
    # llama_cpp.server names the model by the path it was given (no --model_alias).
    assert remote.models() == [llama_server.model_id]


def test_chat_collects_text_and_usage(remote: RemoteBackend, llama_server: LlamaServer) -> None:
    params = GenerationParams(max_tokens=24, temperature=0.0, seed=7)
    try:
        comp = remote.chat(PROMPT, params)
    except RemoteError as err:
        pytest.fail(_alive(llama_server, err))
    assert comp.text.strip()
    assert comp.backend == "remote"
    assert comp.finish_reason in ("stop", "length")
    assert comp.usage.completion_tokens > 0
    assert comp.usage.total_tokens > 0
    assert comp.timings.total_s >= comp.timings.ttft_s > 0


def test_stream_matches_collected_and_non_streaming(remote: RemoteBackend, llama_server: LlamaServer) -> None:
    params = GenerationParams(max_tokens=24, temperature=0.0, seed=1234)
    try:
        chunks = list(remote.stream(PROMPT, params))
        collected = remote.chat(PROMPT, params)
        whole = remote.complete(PROMPT, params)
    except RemoteError as err:
        pytest.fail(_alive(llama_server, err))
    pieces = [c.text for c in chunks if c.text]
    assert len(pieces) >= 3, pieces
    streamed = "".join(pieces)
    assert streamed == collected.text
    assert streamed == whole.text  # greedy: the non-streaming endpoint gives the same text
    last = chunks[-1]
    assert last.finish_reason == whole.finish_reason
    assert last.usage is not None
    # llama_cpp.server ignores stream_options.include_usage: no usage event, so usage falls back to counts.
    assert last.usage.completion_tokens == len(pieces)
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0


def test_max_tokens_gives_finish_reason_length(remote: RemoteBackend) -> None:
    params = GenerationParams(max_tokens=3, temperature=0.0, seed=1)
    chunks = list(remote.stream(PROMPT, params))
    assert chunks[-1].finish_reason == "length"
    assert 1 <= len([c for c in chunks if c.text]) <= 3
    whole = remote.complete(PROMPT, params)
    assert whole.finish_reason == "length"
    assert whole.usage.completion_tokens == 3


def test_unknown_model_id_is_served_by_the_default_model(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama_cpp.server does not reject an unknown model id: it answers with the model it has."""
    monkeypatch.setenv(KEY_ENV, llama_server.api_key)
    params = GenerationParams(max_tokens=3, temperature=0.0)
    with RemoteBackend(llama_server.base_url, "no-such-model", api_key_env=KEY_ENV, timeout=120) as b:
        comp = b.chat(PROMPT, params)
    assert comp.text and comp.model == "no-such-model"


def test_prompt_over_the_context_window(remote: RemoteBackend, llama_server: LlamaServer) -> None:
    """Overflowing n_ctx: a clean 400 without streaming; a broken stream with it (the error follows a 200)."""
    long_prompt: list[ChatMessage] = [{"role": "user", "content": "lorem ipsum dolor sit amet " * 600}]
    params = GenerationParams(max_tokens=8, temperature=0.0)
    with pytest.raises(RemoteRequestError) as info:
        remote.complete(long_prompt, params)
    assert info.value.status == 400 and not info.value.retryable
    assert "context length" in info.value.message
    with pytest.raises(RemoteProtocolError) as info2:
        list(remote.stream(long_prompt, params))
    assert "stream ended early" in info2.value.message
    # the server survives it and keeps answering
    assert remote.models() == [llama_server.model_id]


def test_wrong_api_key_is_an_auth_error(llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-" + secrets.token_hex(8))
    with RemoteBackend(llama_server.base_url, llama_server.model_id, api_key_env=KEY_ENV) as b:
        with pytest.raises(RemoteAuthError) as info:
            b.models()
        assert info.value.status == 401 and "Invalid API key" in info.value.message
        with pytest.raises(RemoteAuthError):
            list(b.stream(PROMPT, GenerationParams(max_tokens=3)))
    assert os.environ[KEY_ENV] not in str(info.value)


def test_public_api_remote_model(llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_REMOTE_URL", llama_server.base_url)
    monkeypatch.setenv(KEY_ENV, llama_server.api_key)
    with edgekit.remote(None, llama_server.model_id, api_key_env=KEY_ENV, timeout=120) as model:
        reply = model.chat("Name three colours of the rainbow.", temperature=0, max_tokens=16)
        assert reply.backend == "remote" and reply.text.strip() and reply.usage.completion_tokens > 0
        streamed = "".join(c.text for c in model.chat("Say hello.", stream=True, temperature=0, max_tokens=8))
        assert streamed.strip()
    monkeypatch.delenv("EDGEKIT_REMOTE_URL")
    with pytest.raises(edgekit.errors.InputError, match="EDGEKIT_REMOTE_URL"):
        edgekit.remote(None, "x")
