"""The ground floor for files, which every floor may import: progress reports, content hashes, writes
that readers never see half done.

A folder's hash is the sha256 of its manifest: one line ``<sha256>  <relative/path>`` per file, sorted by
path, joined with newlines. Every write goes to a temporary sibling (same filesystem, so the rename is
atomic) and is renamed into place only when it is complete. Imports nothing from edgekit but the errors.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import DiskFullError, InputError

ProgressFn = Callable[[str, int, "int | None"], None]
"""progress(stage, done, total): the library reports, the CLI renders."""

CHUNK = 1 << 20


def no_progress(stage: str, done: int, total: int | None) -> None:
    """The ProgressFn that reports nothing: the default wherever a caller may pass one."""
    return None


# --- content hashes ------------------------------------------------------------------------------------


def file_sha256(path: Path, progress: ProgressFn = no_progress, stage: str = "hash") -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            done += len(block)
            progress(stage, done, total)
    return h.hexdigest()


def tree_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def file_stamp(path: Path) -> dict[str, int]:
    """What changes whenever a file's (or folder's) bytes may have: total size, latest mtime and latest
    ctime (the kernel sets ctime on every write, rename and ``utime``, and no call sets it back)."""
    stats = [p.stat() for p in tree_files(path)] if path.is_dir() else [path.stat()]
    return {
        "size": sum(st.st_size for st in stats),
        "mtime_ns": max((st.st_mtime_ns for st in stats), default=0),
        "ctime_ns": max((st.st_ctime_ns for st in stats), default=0),
    }


def tree_sha256(root: Path, progress: ProgressFn = no_progress, stage: str = "hash") -> str:
    lines = [f"{file_sha256(p, progress, stage)}  {p.relative_to(root).as_posix()}" for p in tree_files(root)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def content_sha256(path: Path, progress: ProgressFn = no_progress, stage: str = "hash") -> str:
    return tree_sha256(path, progress, stage) if path.is_dir() else file_sha256(path, progress, stage)


def content_size(path: Path) -> int:
    return sum(p.stat().st_size for p in tree_files(path)) if path.is_dir() else path.stat().st_size


# --- writes readers never see half done ----------------------------------------------------------------


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (mkstemp makes its files 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def remove(path: Path) -> None:
    """Remove a file or a folder tree; nothing when it is not there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def temp_name(final: Path) -> str:
    """The prefix of ``final``'s temporary siblings written by this process: ``.<name>.<pid>.``."""
    return f".{final.name}.{os.getpid()}."


def sweep_stale_temps(final: Path) -> None:
    """Remove temporary siblings of ``final`` whose process is gone (killed mid-write: nothing else would
    remove them). A sibling whose process still runs, or whose name carries no process id, is kept."""
    prefix = f".{final.name}."
    for path in final.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        owner = path.name[len(prefix) :].split(".", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            remove(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _temp_sibling(final: Path, *, folder: bool = False) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(final)
    if folder:
        return Path(tempfile.mkdtemp(prefix=temp_name(final), suffix=".tmp", dir=final.parent))
    fd, name = tempfile.mkstemp(prefix=temp_name(final), suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(name)


def _cannot_create(final: Path, e: OSError) -> InputError:
    return InputError(f"cannot write {final}: {e.strerror}", "Check the folder exists and is writable.")


def _fill(tmp: Path, final: Path, data: bytes) -> None:
    """Write ``data`` into the temporary file ``tmp`` and rename it to ``final``; ``tmp`` never outlives a
    failure."""
    try:
        os.chmod(tmp, new_file_mode())  # the file should read like any new file, not like a private one
        tmp.write_bytes(data)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and ``os.replace``. An OSError is raised as
    it is: for the cache's own small files (memos, ledgers, records), whose callers decide what it means."""
    path = Path(path)
    _fill(_temp_sibling(path), path, data)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` like ``atomic_replace``; an OSError becomes an InputError naming the
    file (for files the user named: reports, observations)."""
    path = Path(path)
    try:
        tmp = _temp_sibling(path)
    except OSError as e:
        raise _cannot_create(path, e) from None
    try:
        _fill(tmp, path, data)
    except OSError as e:
        raise InputError(
            f"cannot write {path}: {e.strerror}", "Check free disk space and permissions."
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_output(final: Path, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``, else remove it.

    For outputs written by other code (a quantizer, an exporter). ``folder=True`` yields an empty
    temporary folder (for ONNX and Hugging Face outputs); a file is created private (0600). An existing
    ``final`` is replaced only after the new output is complete.
    """
    final = Path(final)
    try:
        tmp = _temp_sibling(final, folder=folder)
    except OSError as e:
        raise _cannot_create(final, e) from None
    try:
        yield tmp
        if folder and final.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as e:
        remove(tmp)
        if e.errno == errno.ENOSPC:
            raise DiskFullError(
                f"disk full while writing {final}", f"Free space on {final.parent} and run again."
            ) from None
        raise
    except BaseException:
        remove(tmp)
        raise


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing): one holder across processes.
    Raises OSError when the file cannot be created."""
    fd = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
