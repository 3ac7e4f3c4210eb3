"""Removing models: the cached copy goes, a user's file stays, and models.lock loses only what was
added or derived here (real pulls from a loopback server, real lock edits)."""

from __future__ import annotations

from pathlib import Path

import pytest

import edgekit
from edgekit.errors import InputError
from edgekit.models.edit import add_local, remove_entry

from .loopback import Files, serve
from .test_store import BLOB, lock_text


def test_rm_deletes_the_cached_copy_and_a_pull_fetches_it_again(isolated: Path) -> None:
    with serve(Files({"/m.gguf": BLOB})) as base:
        (isolated / "models.lock").write_text(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'))
        path = edgekit.pull("blob")
        removal = edgekit.remove_model("blob")
        assert removal.deleted == path.parent and removal.freed_bytes >= len(BLOB)
        assert not path.exists() and not path.parent.parent.exists()
        info = edgekit.model_info("blob")
        assert not info["cached"] and not info["verified"] and info["source"]["kind"] == "url"
        assert edgekit.remove_model("blob").deleted is None  # nothing left: not an error
        with pytest.raises(InputError, match="pinned to its url source"):
            edgekit.remove_model("blob", unpin=True)
        assert edgekit.pull("blob").read_bytes() == BLOB


def test_an_added_entry_is_unpinned_and_the_users_file_kept(isolated: Path) -> None:
    lock = isolated / "models.lock"
    lock.write_text("# mine\n" + lock_text('{ kind = "url", url = "https://example.invalid/m.gguf" }'))
    mine = isolated / "mine.gguf"
    mine.write_bytes(b"GGUF" + BLOB[4:])  # detect_format reads the magic only
    add_local(lock, mine, name="mine", license="MIT")
    assert edgekit.model_info("mine")["cached"]
    removal = edgekit.remove_model("mine", unpin=True)
    assert removal.kept == mine and removal.deleted is None and mine.read_bytes()[4:] == BLOB[4:]
    text = lock.read_text()
    assert "[models.mine]" not in text and "[models.blob]" in text and text.startswith("# mine\n")
    add_local(lock, mine, name="mine2", license="MIT")
    text = lock.read_text().replace('default = "blob"', 'default = "mine2"')
    lock.write_text(text)
    with pytest.raises(InputError, match="is the default model"):
        edgekit.remove_model("mine2", unpin=True)
    assert "[models.mine2]" in lock.read_text() and mine.exists()


def test_a_build_input_cannot_be_unpinned_while_a_build_uses_it(isolated: Path) -> None:
    with pytest.raises(InputError, match="build input of multilingual-e5-small-int8"):
        remove_entry(isolated / "models.lock", "multilingual-e5-small-q4")


def test_a_derived_output_inside_the_cache_is_deleted_with_its_entry(isolated: Path) -> None:
    lock = isolated / "models.lock"
    out = isolated / "cache" / "compress" / "steps" / "x.gguf"  # EDGEKIT_CACHE_DIR of the fixture
    out.parent.mkdir(parents=True)
    out.write_bytes(b"GGUF" + BLOB[4:])
    add_local(lock, out, name="derived", license="MIT", provenance={"step": "quantize"})
    removal = edgekit.remove_model("derived", unpin=True)
    assert removal.deleted == out and removal.freed_bytes == len(BLOB) and not out.exists()
    assert "[models.derived]" not in lock.read_text()
