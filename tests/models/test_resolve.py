"""The one resolver (edgekit/models/resolve.py): what a spec names, then its bytes in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.config import Settings
from edgekit.errors import ModelFileError, UnknownModelError
from edgekit.files import content_sha256
from edgekit.models.lock import Lockfile
from edgekit.models.resolve import fetch, locate, path_format


def test_a_path_is_named_by_what_lies_there(tmp_path: Path) -> None:
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "config.json").write_text("{}")
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"x")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    got = {name: path_format(tmp_path / name) for name in ("m.gguf", "onnx", "hf", "empty")}
    assert got == {"m.gguf": "gguf", "onnx": "onnx", "hf": "hf", "empty": "folder"}
    art = locate(str(tmp_path / "m.gguf"))
    assert (art.name, art.format, art.path, art.sha256, art.entry) == (
        "m.gguf",
        "gguf",
        tmp_path / "m.gguf",
        "",
        None,
    )
    assert art.license == "unknown" and art.size == 4


def test_a_missing_path_and_an_unknown_name_are_one_line_errors(isolated: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file or folder") as info:
        locate("missing/model.gguf")
    assert "edgekit models list" in info.value.hint
    with pytest.raises(UnknownModelError):
        locate("no-such-entry")


def test_a_lock_name_is_located_without_fetching(isolated: Path) -> None:
    entry = Lockfile.load(isolated / "models.lock").get("smollm2-135m-instruct")
    art = locate("smollm2-135m-instruct")
    assert art.entry == entry and (art.sha256, art.format, art.size) == (entry.sha256, "gguf", entry.size)
    assert not art.path.exists()  # an isolated cache: nothing was pulled
    default = locate(None)
    assert default.name == Lockfile.load(isolated / "models.lock").get().name


def test_fetch_hashes_a_path_once_and_remembers_it(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = isolated / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    art = fetch(locate(folder))
    assert art.sha256 == content_sha256(folder)
    assert fetch(locate(folder), hash_path=False).sha256 == ""
    from edgekit.models import verify

    def no_hashing(*_: object, **__: object) -> str:
        raise AssertionError("hashed again")

    monkeypatch.setattr(verify, "content_sha256", no_hashing)
    assert fetch(locate(folder), settings=Settings.from_env()).sha256 == art.sha256  # from the memo
    (folder / "config.json").write_text("{}")  # a change is seen: hashing is asked for again
    with pytest.raises(AssertionError, match="hashed again"):
        fetch(locate(folder))
