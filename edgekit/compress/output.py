"""Writing compression outputs so no half-written file or folder ever sits under its final name.

Quantized models are hundreds of MB; a crash, Ctrl-C or full disk mid-write must leave the final path as
it was. Every pass writes into a temporary sibling (same filesystem, so the rename is atomic) and renames
it into place only when the write finished.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import DiskFullError, InputError


@contextmanager
def atomic_output(final: Path, *, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``, else remove it.

    ``folder=True`` yields an empty temporary folder (for ONNX and Hugging Face outputs). An existing
    ``final`` is replaced only after the new output is complete.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            os.close(fd)
            tmp = Path(name)
    except OSError as e:
        raise InputError(
            f"cannot write {final}: {e.strerror}", "Check the folder exists and is writable."
        ) from None
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
        _remove(tmp)
        if e.errno == errno.ENOSPC:
            raise DiskFullError(
                f"disk full while writing {final}", f"Free space on {final.parent} and run again."
            ) from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
