"""The model store: where each models.lock entry lives on disk, pulling it, and verifying it.

Layout: ``<cache>/<name>/<sha256[:16]>/<file>``; local-file sources stay where they are. A pull writes to a
temporary name, checks sha256 and size, then renames, so the final name only ever holds a verified
artifact. Concurrent pulls of one entry serialize on a lock file. A ``build`` source is pulled the same
way, except that its bytes come from a build pass run here on its (pulled, verified) inputs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from edgekit.config import Settings
from edgekit.errors import DownloadError, HashMismatchError, ModelFileError, OfflineError
from edgekit.files import (
    ProgressFn,
    content_sha256,
    content_size,
    exclusive_lock,
    no_progress,
    remove,
    sweep_stale_temps,
    temp_name,
)
from edgekit.models.lock import BUILD_PASSES, BuildSource, Lockfile, ModelEntry
from edgekit.models.sources import fetch, local_source_path
from edgekit.models.verify import VerifyMemo


@dataclass(frozen=True)
class EntryStatus:
    entry: ModelEntry
    path: Path
    cached: bool
    verified: bool


@dataclass(frozen=True)
class Removal:
    """What ``ModelStore.remove`` deleted: the artifact's cache folder, or a local source that lies in the
    cache (None when nothing was cached, or the artifact is a user's file, which is never deleted), and
    the bytes it held."""

    entry: ModelEntry
    deleted: Path | None
    freed_bytes: int
    kept: Path | None
    """A local file the entry pointed at: left where it is."""


class ModelStore:
    def __init__(self, settings: Settings | None = None, lock: Lockfile | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.lock = lock or Lockfile.load(self.settings.lock_path)
        self.memo = VerifyMemo(self.settings.cache_dir / "verified.json")

    # --- where things are ------------------------------------------------------------------------

    def path_for(self, entry: ModelEntry) -> Path:
        local = local_source_path(entry, self.lock.root)
        if local is not None:
            return local
        return self.settings.cache_dir / entry.name / entry.sha256[:16] / entry.file

    def status(self, entry: ModelEntry) -> EntryStatus:
        path = self.path_for(entry)
        cached = path.exists()
        return EntryStatus(entry, path, cached, cached and self.memo.known(path, entry.sha256))

    def remove(self, name: str) -> Removal:
        """Delete the cached artifact of ``name`` (its whole ``<cache>/<name>/<sha16>`` folder); a pull
        fetches it again. A local source is left in place (the store never deletes a user's file), unless
        it is a derived output (with provenance) that lies inside the cache."""
        entry = self.lock.get(name)
        path = self.path_for(entry)
        cache = self.settings.cache_dir.resolve()
        if local_source_path(entry, self.lock.root) is not None:
            if entry.provenance is None or cache not in path.resolve().parents:
                return Removal(entry, None, 0, path if path.exists() else None)
            freed = _bytes_under(path)
            self.memo.forget(path)
            remove(path)  # an output a compress step wrote into edgekit's own cache
            return Removal(entry, path, freed, None)
        folder = path.parent
        if not folder.exists():
            return Removal(entry, None, 0, None)
        with self._locked(folder):
            freed = _bytes_under(folder)
            self.memo.forget(path)
            remove(folder)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the name's folder, once no version of it is left
        return Removal(entry, folder, freed, None)

    # --- getting and checking ---------------------------------------------------------------------

    def ensure(self, name: str | None = None, progress: ProgressFn = no_progress) -> Path:
        """Path of a verified artifact: pulled if missing, hashed once, then trusted while size+mtime hold."""
        entry = self.lock.get(name)
        path = self.path_for(entry)
        if not path.exists():
            return self.pull(entry.name, progress=progress)
        if not self.memo.known(path, entry.sha256):
            self._check(entry, path, progress)
        return path

    def verify(self, name: str | None = None, progress: ProgressFn = no_progress) -> Path:
        """Re-hash a cached artifact regardless of the memo. Raises if missing or different."""
        entry = self.lock.get(name)
        path = self.path_for(entry)
        if not path.exists():
            raise ModelFileError(
                f"{entry.name} is not in the cache ({path})", f"Run 'edgekit pull {entry.name}'."
            )
        self.memo.forget(path)
        self._check(entry, path, progress)
        return path

    def pull(
        self, name: str | None = None, *, force: bool = False, progress: ProgressFn = no_progress
    ) -> Path:
        entry = self.lock.get(name)
        final = self.path_for(entry)
        if local_source_path(entry, self.lock.root) is not None:
            if not final.exists():
                raise ModelFileError(
                    f"{entry.name}: local file {final} does not exist",
                    "Fix source.path in models.lock or restore the file.",
                )
            self._check(entry, final, progress)
            return final
        if final.exists() and not force:
            return self.ensure(entry.name, progress)
        build = isinstance(entry.source, BuildSource)
        if self.settings.offline and not build:  # a build needs no network once its inputs are cached
            raise OfflineError(
                f"{entry.name} is not cached ({final}) and EDGEKIT_OFFLINE=1 forbids downloading it"
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._locked(final.parent):
            if final.exists() and not force:  # another process finished while we waited
                return self.ensure(entry.name, progress)
            sweep_stale_temps(final)  # a pull that was killed left its bytes under a dead process's name
            tmp = final.with_name(f"{temp_name(final)}tmp")
            remove(tmp)
            try:
                if build:
                    self._build(entry, tmp, progress)
                else:
                    fetch(entry, tmp, final.parent / ".work", self.settings, progress)
                try:
                    self._check(entry, tmp, progress, remember=False)
                except HashMismatchError as e:
                    raise _pull_mismatch(entry, e) from None
            except HashMismatchError:
                remove(tmp)
                remove(final.parent / ".work")  # do not resume from bytes that proved wrong
                raise
            except BaseException:
                remove(tmp)
                raise
            remove(final)
            os.replace(tmp, final)
            self.memo.remember(final, entry.sha256)
            remove(final.parent / ".work")
        return final

    def _build(self, entry: ModelEntry, out: Path, progress: ProgressFn) -> None:
        """Run the entry's build pass on its inputs (each pulled and verified first) into ``out``."""
        src = entry.source
        assert isinstance(src, BuildSource)
        inputs = {}
        for role, dep in src.inputs.items():
            try:
                inputs[role] = self.ensure(dep, progress)
            except HashMismatchError as e:
                raise HashMismatchError(
                    f"{entry.name} is built from {dep}, which the cache holds corrupted: {e.message}",
                    f"Run 'edgekit pull {dep} --force', then pull {entry.name} again.",
                ) from None
        module, _, func = BUILD_PASSES[src.pass_][0].partition(":")
        getattr(import_module(module), func)(inputs, out, progress)

    def _check(self, entry: ModelEntry, path: Path, progress: ProgressFn, *, remember: bool = True) -> None:
        again = "build it again" if isinstance(entry.source, BuildSource) else "fetch it again"
        hint = f"The file was corrupted or replaced; run 'edgekit pull {entry.name} --force' to {again}."
        size = content_size(path)
        if size != entry.size:
            msg = f"{entry.name}: size {size} != {entry.size} in models.lock ({path})"
            raise HashMismatchError(msg, hint)
        digest = content_sha256(path, progress, stage="verify")
        if digest != entry.sha256:
            msg = f"{entry.name}: sha256 {digest[:16]}... != {entry.sha256[:16]}... in models.lock ({path})"
            raise HashMismatchError(msg, hint)
        if remember:
            self.memo.remember(path, entry.sha256)

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(exclusive_lock(folder / ".lock"))
            except OSError as e:
                raise DownloadError(
                    f"cannot create {folder}: {e.strerror}", "Check EDGEKIT_CACHE_DIR is writable."
                ) from None
            yield


def _bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _pull_mismatch(entry: ModelEntry, e: HashMismatchError) -> HashMismatchError:
    if isinstance(entry.source, BuildSource):
        return HashMismatchError(
            f"built {e.message}",
            f"The {entry.source.pass_!r} build pass made other bytes than the pinned ones from verified "
            "inputs: this edgekit version does not reproduce the entry. Use the edgekit release that pinned "
            "it, or re-pin its sha256 and size after checking the build.",
        )
    return HashMismatchError(
        f"downloaded {e.message}",
        "The source no longer serves the pinned bytes; check the entry's source and sha256.",
    )
