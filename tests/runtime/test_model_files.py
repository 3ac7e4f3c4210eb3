"""Bad model files: each is refused with a clear ModelFileError, and none can take the caller down.

The lethal ones are built from the real default model by broken_gguf.py: a vocabulary llama.cpp loads but
aborts on (std::out_of_range -> std::terminate -> SIGABRT) as soon as it tokenizes ordinary text, and a
``llama.block_count`` that llama.cpp's loader asserts on (GGML_ASSERT -> SIGABRT). The tests first show
that each really kills a plain process, then that edgekit turns it into a one-line error while the
caller goes on (this process loads and runs the real model; the CLI exits 2).
"""

from __future__ import annotations

import os
import random
import re
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit
import edgekit.runtime.llamacpp
import edgekit.runtime.probe
from edgekit.cli.errors import exit_code
from edgekit.errors import ModelFileError, TokenizerError
from edgekit.runtime.gguf import read_gguf
from edgekit.runtime.llamacpp import LlamaCppBackend
from edgekit.runtime.llamacpp_fields import check_model
from edgekit.runtime.types import ChatMessage

from .gguf_bytes import ARRAY, I32, STRING, U32, nested_array, small_model

pytestmark = pytest.mark.model

TEXT = b"Hello world, how are you?"
RAW_TOKENIZE = (
    "import sys, llama_cpp\n"
    "llm = llama_cpp.Llama(sys.argv[1], vocab_only=True, verbose=False)\n"
    f"print(llm.tokenize({TEXT!r}, add_bos=False))\n"
)


def raw_tokenize(path: Path) -> subprocess.CompletedProcess[str]:
    """Tokenize TEXT with plain llama_cpp, in a child (no edgekit, no probe, no gdb backtrace)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    env["GGML_NO_BACKTRACE"] = "1"
    return subprocess.run(
        [sys.executable, "-c", RAW_TOKENIZE, str(path)], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture(scope="module")
def broken_tokenizer(default_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .broken_gguf import write_broken_tokenizer_gguf

    return write_broken_tokenizer_gguf(default_model_path, tmp_path_factory.mktemp("broken") / "broken.gguf")


@pytest.fixture
def no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if edgekit hands the file to llama.cpp (probe child or in-process backend)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file reached llama.cpp")

    monkeypatch.setattr(edgekit.runtime.probe, "probe_tokenizer", refuse)
    monkeypatch.setattr(edgekit.runtime.llamacpp, "LlamaCppBackend", refuse)


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if native code opens the file (the probe's child or llama.cpp in this process), while
    edgekit's own checks in front of them still run."""
    import llama_cpp

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file reached llama.cpp")

    monkeypatch.setattr(edgekit.runtime.probe, "run_module", refuse)
    monkeypatch.setattr(llama_cpp, "Llama", refuse)


# --- a broken tokenizer -------------------------------------------------------------------------


def test_broken_tokenizer_kills_a_plain_process(broken_tokenizer: Path, default_model_path: Path) -> None:
    ok = raw_tokenize(default_model_path)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().startswith("[")

    proc = raw_tokenize(broken_tokenizer)
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stderr[-2000:])
    assert "std::out_of_range" in proc.stderr
    assert "unordered_map::at" in proc.stderr


def test_load_refuses_broken_tokenizer_and_survives(broken_tokenizer: Path, default_model_path: Path) -> None:
    read_gguf(broken_tokenizer)  # a well-formed GGUF: only running the tokenizer shows the problem
    with pytest.raises(TokenizerError) as info:
        edgekit.load(broken_tokenizer)
    err = info.value
    assert exit_code(err) == 2
    assert "crashed on ordinary text" in err.message
    assert "unordered_map::at" in err.message  # the C++ error, not a faulthandler or gdb dump
    assert str(broken_tokenizer) in err.message

    # this process is alive, and llama.cpp in it still loads and runs the real model
    with edgekit.load(default_model_path, n_ctx=512) as model:
        out = model.chat("Say hello.", max_tokens=4, temperature=0.0, seed=0)
    assert out.text.strip()


# --- files llama.cpp never sees -----------------------------------------------------------------


@pytest.mark.parametrize("keep", ["third", "header"])
def test_truncated_gguf(keep: str, default_model_path: Path, tmp_path: Path, no_llama: None) -> None:
    data = default_model_path.read_bytes()
    n = len(data) // 3 if keep == "third" else 1000  # tensor data cut short / metadata cut short
    path = tmp_path / "truncated.gguf"
    path.write_bytes(data[:n])

    with pytest.raises(ModelFileError, match="truncated") as direct:
        read_gguf(path)
    assert type(direct.value) is ModelFileError
    with pytest.raises(ModelFileError, match="truncated") as loaded:
        edgekit.load(path)
    assert exit_code(loaded.value) == 2


@pytest.mark.parametrize(
    "content", [b"", random.Random(0).randbytes(4096), b"GGU"], ids=["empty", "random", "short"]
)
def test_not_a_gguf(content: bytes, tmp_path: Path, no_llama: None) -> None:
    assert not content.startswith(b"GGUF")
    path = tmp_path / "model.gguf"
    path.write_bytes(content)

    with pytest.raises(ModelFileError, match="not a GGUF file"):
        read_gguf(path)
    with pytest.raises(ModelFileError, match="not a GGUF file") as info:
        edgekit.load(path)
    assert exit_code(info.value) == 2


def gguf_header(*kvs: bytes, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kvs)) + b"".join(kvs)


def kv(key: bytes, vtype: int, payload: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key + struct.pack("<I", vtype) + payload


@pytest.mark.parametrize(
    ("header", "match"),
    [
        # an array of 2**62 uint8: must not become a MemoryError from trying to read it
        (gguf_header(kv(b"a", 9, struct.pack("<IQ", 0, 1 << 62))), "corrupt GGUF header"),
        # a 1000-byte string in a file that ends first
        (gguf_header(kv(b"general.name", 8, struct.pack("<Q", 1000) + b"x" * 10)), "truncated"),
        # a tensor count the header then lacks
        (gguf_header(n_tensors=2), "truncated"),
    ],
    ids=["huge-array", "short-string", "missing-tensor-info"],
)
def test_corrupt_header(header: bytes, match: str, tmp_path: Path, no_llama: None) -> None:
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(header)
    with pytest.raises(ModelFileError, match=match):
        read_gguf(path)
    with pytest.raises(ModelFileError, match=match):
        edgekit.load(path)


def test_missing_file(tmp_path: Path, no_llama: None) -> None:
    path = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelFileError, match="no such file"):
        edgekit.load(path)
    with pytest.raises(ModelFileError, match="cannot open"):
        read_gguf(path)


def test_model_without_chat_template_gets_a_plain_transcript(
    default_model_path: Path, tmp_path: Path
) -> None:
    from .broken_gguf import write_base_model_gguf

    path = write_base_model_gguf(default_model_path, tmp_path / "base.gguf")
    assert read_gguf(path).chat_template is None
    with edgekit.load(path, n_ctx=512) as model:
        backend = model.backend
        assert isinstance(backend, LlamaCppBackend)
        msgs: list[ChatMessage] = [{"role": "user", "content": "Which city is the capital of France?"}]
        assert backend.render(msgs) == "user: Which city is the capital of France?\nassistant:"
        reply = model.chat(msgs, temperature=0, max_tokens=12)
    assert reply.text.strip() and reply.usage.completion_tokens > 0


# --- header fields llama.cpp asserts on -------------------------------------------------------------

RAW_LOAD = "import sys, llama_cpp\nllama_cpp.Llama(sys.argv[1], n_ctx=256, verbose=False)\nprint('loaded')\n"


def test_default_model_passes_the_field_checks(default_model_path: Path) -> None:
    check_model(default_model_path, read_gguf(default_model_path))


def test_block_count_zero_kills_a_plain_process(default_model_path: Path, tmp_path: Path) -> None:
    from .broken_gguf import write_with_uint32

    path = write_with_uint32(default_model_path, tmp_path / "b0.gguf", "llama.block_count", 0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"} | {"GGML_NO_BACKTRACE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RAW_LOAD, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stderr[-2000:])


@pytest.mark.parametrize("count", [0, 1000, 65536])
def test_cli_refuses_a_block_count_llama_cpp_aborts_on(
    count: int, default_model_path: Path, tmp_path: Path
) -> None:
    """In a child, so that a regression aborts the child, not pytest: exit 2 and one line, not 134/-6."""
    from .broken_gguf import write_with_uint32

    path = write_with_uint32(default_model_path, tmp_path / f"b{count}.gguf", "llama.block_count", count)
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "run", "-m", str(path), "Hello", "-n", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"},
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], proc.stderr
    assert f"llama.block_count is {count}" in lines[0] and str(path) in lines[0]
    assert not proc.stdout.strip()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"llama__block_count": (U32, 0)}, "llama.block_count is 0"),
        ({"llama__block_count": (U32, 65536)}, "llama.block_count is 65536"),
        ({"general__alignment": (U32, 0)}, "general.alignment"),
        ({"general__alignment": (STRING, "32")}, "general.alignment is a string"),
        ({"llama__context_length": (U32, 2**32 - 1)}, "llama.context_length is 4294967295"),
        ({"deep": (ARRAY, nested_array(5000))}, "nested more than 8 deep"),
        ({"llama__expert_used_count": (U32, 2)}, "llama.expert_used_count is 2 with 0 experts"),
        ({"llama__rope__scaling__type": (STRING, "bogus")}, "llama.rope.scaling.type"),
        ({"tokenizer__ggml__token_type": (ARRAY, (I32, [1]))}, "tokenizer.ggml.token_type has 1 items"),
    ],
    ids=[
        "blocks-0",
        "blocks-65536",
        "align-0",
        "align-str",
        "ctx-2^32-1",
        "nested",
        "experts",
        "rope",
        "vocab",
    ],
)
def test_load_refuses_fields_before_native_code(
    override: dict[str, tuple[int, object]], needle: str, tmp_path: Path, no_native: None
) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(bytes(small_model(**override).buf))
    with pytest.raises(ModelFileError) as info:
        edgekit.load(path)
    err = info.value
    assert exit_code(err) == 2 and needle in err.message and str(path) in err.message
    assert "\n" not in str(err)
    with pytest.raises(ModelFileError, match=re.escape(needle)):
        LlamaCppBackend(path)  # the backend checks on its own, for callers that skip edgekit.load
