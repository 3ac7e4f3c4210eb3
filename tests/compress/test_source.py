"""Resolving compression sources: folders, GGUF files, lock names, and hub ids at a pinned commit."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edgekit.compress import source
from edgekit.compress.source import inherited_license, license_of, parse_hub_id, resolve
from edgekit.config import Settings
from edgekit.errors import DownloadError, InputError, ModelFileError, OfflineError, UnknownModelError
from edgekit.files import content_sha256

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_hub_ids_parse_and_need_a_full_commit() -> None:
    assert parse_hub_id(f"HuggingFaceTB/SmolLM2-135M-Instruct@{COMMIT}") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        COMMIT,
    )
    assert parse_hub_id("smollm2-135m-instruct") is None
    assert parse_hub_id("some/folder") is None
    with pytest.raises(InputError, match="not a full commit"):
        parse_hub_id("org/name@main")


def test_hf_folder_and_gguf_file(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    got = resolve(folder)
    assert (got.kind, got.format, got.path) == ("hf", "hf", folder.resolve())
    assert got.sha256 == content_sha256(folder)
    with pytest.raises(InputError, match=r"no config\.json"):
        resolve(tmp_path)


@pytest.mark.model
def test_truncated_gguf_is_named(tmp_path: Path, default_f16_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with default_f16_gguf.open("rb") as f:
        cut.write_bytes(f.read(20_000_000))
    with pytest.raises(ModelFileError, match="truncated"):
        resolve(cut)
    foreign = tmp_path / "notes.gguf"
    foreign.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        resolve(foreign)


@pytest.mark.model
def test_lock_name_resolves_to_the_pulled_file(default_model_path: Path) -> None:
    got = resolve("smollm2-135m-instruct")
    assert (got.kind, got.format, got.path) == ("lock", "gguf", default_model_path)
    assert got.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    with pytest.raises(UnknownModelError):
        resolve("no-such-model")
    with pytest.raises(InputError, match=r"not a models\.lock name"):
        resolve("no/such/path.gguf")


def test_hub_offline_is_an_error_naming_it(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKIT_OFFLINE", "1")
    with pytest.raises(OfflineError, match="org/name"):
        resolve(f"org/name@{COMMIT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("client", ["huggingface_hub", "https"])
def test_unreachable_hub_is_a_download_error(
    client: str, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setattr(source, "_has_hub_client", lambda: client == "huggingface_hub")
    with pytest.raises(DownloadError, match="org/name"):
        resolve(f"org/name@{COMMIT}")
    assert not list((isolated / "cache").rglob("config.json"))  # nothing left under the final name


FILES = {
    "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
    "tokenizer.json": b'{"model": {"type": "BPE"}}',
    "model.safetensors": b"\0" * 1000,
    "README.md": b"# not needed",
}


class _Hub(BaseHTTPRequestHandler):
    """The hub routes both download paths use: the revision's file list and resolve/ (GET and HEAD, with
    the commit and ETag headers huggingface_hub reads)."""

    def _body(self) -> bytes | None:
        if self.path == "/api/models/org/name/revision/main":  # a branch: the hub answers its commit
            return json.dumps({"id": "org/name", "sha": COMMIT}).encode()
        if self.path == f"/api/models/org/name/revision/{COMMIT}":
            siblings = [{"rfilename": n} for n in FILES]
            return json.dumps({"id": "org/name", "sha": COMMIT, "siblings": siblings}).encode()
        if self.path.startswith(f"/org/name/resolve/{COMMIT}/"):
            return FILES.get(self.path.rsplit("/", 1)[1])
        return None

    def _head(self) -> bytes | None:
        body = self._body()
        if body is None:
            self.send_error(404)
            return None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha1(body).hexdigest()}"')
        self.end_headers()
        return body

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        body = self._head()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("client", ["huggingface_hub", "https"])
def test_hub_download_fetches_the_pinned_files(
    client: str, hub: str, isolated: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("EDGEKIT_HF_ENDPOINT", hub)
    monkeypatch.setattr(source, "_has_hub_client", lambda: client == "huggingface_hub")
    got = resolve(f"org/name@{COMMIT}")
    assert got.kind == "hub" and got.format == "hf"
    assert got.path == source.hub_folder(Settings.from_env(), "org/name", COMMIT)
    assert sorted(p.name for p in got.path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert got.sha256 == content_sha256(got.path)
    assert resolve(f"org/name@{COMMIT}") == got  # cached by revision
    assert capsys.readouterr() == ("", "")  # no progress bars from the library
    with pytest.raises(DownloadError, match="org/other"):
        resolve(f"org/other@{COMMIT}")


@pytest.mark.parametrize(
    ("readme", "expected"),
    [
        ("---\nlicense: apache-2.0\nlanguage: en\n---\n# Model\n", "Apache-2.0"),
        ("---\ntags: [x]\nlicense: 'mit'\n---\n", "MIT"),
        ("---\nlicense: llama3.1\n---\n", "llama3.1"),  # kept as written when not a common SPDX id
        ("# Model\nlicense: mit\n", "unknown"),  # not front matter
        ("---\nlanguage: en\n---\nlicense: mit\n", "unknown"),  # after the front matter
    ],
)
def test_an_hf_folder_license_comes_from_its_readme_front_matter(
    tmp_path: Path, readme: str, expected: str
) -> None:
    (tmp_path / "README.md").write_text(readme)
    assert license_of(tmp_path) == expected
    assert license_of(tmp_path / "missing") == "unknown"


def test_a_lock_name_source_passes_on_its_license(isolated: Path) -> None:
    settings = Settings.from_env()
    assert inherited_license("smollm2-135m-instruct", settings) == "Apache-2.0"
    assert inherited_license("org/name@" + "0" * 40, settings) == "unknown"


def test_a_repo_without_a_revision_says_how_to_pin_one() -> None:
    with pytest.raises(InputError, match="needs a pinned revision") as info:
        resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "@<40-character commit>" in info.value.hint and "@main" in info.value.hint


def test_a_branch_resolves_to_its_commit_with_a_warning(
    hub: str, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_HF_ENDPOINT", hub)
    monkeypatch.setattr(source, "_has_hub_client", lambda: False)
    got = resolve("org/name@main")
    assert got.display == f"org/name@{COMMIT}"  # what provenance records
    assert got.path == source.hub_folder(Settings.from_env(), "org/name", COMMIT)
    assert "moving revision" in got.warning and COMMIT in got.warning
    with pytest.raises(DownloadError, match="HTTP 404"):
        resolve("org/name@no-such-branch")


def test_one_rule_names_every_sources_outputs(tmp_path: Path) -> None:
    from edgekit.compress.source import output_stem

    (tmp_path / "SmolLM2 135M.Q4_1.gguf").write_bytes(b"GGUF")
    (tmp_path / "My-HF_Model").mkdir()
    assert output_stem(str(tmp_path / "SmolLM2 135M.Q4_1.gguf")) == "smollm2-135m.q4_1"
    assert output_stem(str(tmp_path / "My-HF_Model")) == "my-hf_model"
    assert output_stem("HuggingFaceTB/SmolLM2-135M@" + "a" * 40) == "smollm2-135m"
    assert output_stem("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert output_stem("_odd") == "m-_odd" and output_stem("...") == "model"
