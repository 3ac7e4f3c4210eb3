"""Resolving what the user named as a compression source: HF folder, hub id@revision, GGUF file or lock name.

Every source resolves to a local path plus the sha256 of its content (a folder's is the hash of its
manifest, as in models.lock), so provenance says exactly which bytes an output was made from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgekit.config import Settings
from edgekit.errors import DownloadError, InputError, ModelFileError, OfflineError, UnknownModelError
from edgekit.files import ProgressFn, no_progress
from edgekit.models.lock import NAME_RE
from edgekit.models.resolve import Artifact, fetch, locate

SourceKind = Literal["hf", "gguf", "hub", "lock"]

# org/name@revision; the revision must be a full commit so the same id always means the same bytes.
HUB_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)@(?P<rev>[^@\s]+)$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Files a conversion needs from a hub repo (weights, config, tokenizer); not READMEs, ONNX or GGUF copies.
HUB_PATTERNS = ("*.json", "*.safetensors", "tokenizer.model", "*.jinja", "*.txt")


@dataclass(frozen=True)
class Source:
    """A resolved source. ``kind`` is what the user named; ``format`` what lies at ``path``."""

    kind: SourceKind
    path: Path
    sha256: str
    display: str
    license: str = "unknown"
    """The source's license, which derived entries inherit: the models.lock entry's, a GGUF's
    ``general.license``, or the ``license:`` line of an HF folder's README front matter."""
    warning: str = ""
    """Something the user should know about how it was resolved (a moving revision), or ""."""

    @property
    def format(self) -> Literal["hf", "gguf"]:
        return "hf" if self.path.is_dir() else "gguf"


REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PIN_HINT = (
    "Pin a commit: org/name@<40-character commit> (the model page's 'Files and versions' > 'History' "
    "lists them); or write org/name@main to take the current one (resolved and recorded in provenance)."
)


def output_stem(text: str) -> str:
    """The one rule for what a source's outputs are named after (quantize's default file and entry names,
    the recipe ``--emit-recipe`` writes, a distilled student): a hub repo's name, a file's stem, a folder's
    name or a lock name, lowercased to a valid models.lock name."""
    path = Path(text).expanduser()
    if HUB_RE.match(text):
        stem = text.split("@")[0].split("/")[-1]
    elif path.exists():
        stem = path.resolve().stem if path.is_file() else path.resolve().name
    else:
        stem = text
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-.") or "model"
    return stem if NAME_RE.match(stem) else f"m-{stem}"


def parse_hub_id(text: str) -> tuple[str, str] | None:
    """``org/name@<commit>`` -> (repo, commit); None when ``text`` does not look like a hub id. A branch
    or tag (``@main``) is refused here: ``resolve`` turns it into a commit first."""
    m = HUB_RE.match(text)
    if not m:
        return None
    rev = m["rev"]
    if not COMMIT_RE.match(rev):
        raise InputError(f"{text}: revision {rev!r} is not a full commit hash", PIN_HINT)
    return m["repo"], rev


def _hub_headers() -> dict[str, str]:
    import os

    return {"Authorization": f"Bearer {os.environ['HF_TOKEN']}"} if os.environ.get("HF_TOKEN") else {}


def _revision_info(repo: str, revision: str, settings: Settings) -> tuple[str, Any]:
    """(url, JSON reply) of the hub's model API for ``repo`` at ``revision``: its commit and its files."""
    import httpx

    url = f"{settings.hf_endpoint}/api/models/{repo}/revision/{revision}"
    try:
        resp = httpx.get(url, headers=_hub_headers(), timeout=30.0, follow_redirects=True)
    except httpx.HTTPError as e:
        raise DownloadError(f"GET {url} failed: {type(e).__name__}: {e}") from None
    if resp.status_code >= 400:
        raise DownloadError(
            f"GET {url} failed: HTTP {resp.status_code}",
            "Check the repo id and revision (and HF_TOKEN for gated repos).",
        )
    try:
        return url, resp.json()
    except ValueError:
        raise DownloadError(f"GET {url}: the reply is not the hub's model JSON") from None


def resolve_revision(repo: str, revision: str, settings: Settings) -> str:
    """The commit a branch or tag of ``repo`` points at now (the hub's model API)."""
    if settings.offline:
        raise OfflineError(
            f"{repo}@{revision} names a moving revision, and EDGEKIT_OFFLINE=1 forbids asking the hub"
        )
    url, info = _revision_info(repo, revision, settings)
    sha = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not COMMIT_RE.match(sha):
        raise DownloadError(f"GET {url}: the reply names no commit")
    return sha


def resolve(
    src: str | Path, *, settings: Settings | None = None, progress: ProgressFn = no_progress
) -> Source:
    """Resolve ``src`` to a local HF folder or GGUF file with its content hash."""
    settings = settings or Settings.from_env()
    text = str(src)
    path = Path(text).expanduser()
    if path.exists():
        return _local(locate(path, settings=settings), text, settings, progress)
    warning = ""
    m = HUB_RE.match(text)
    if m and not COMMIT_RE.match(m["rev"]):  # a branch or tag: take the commit it points at now
        commit = resolve_revision(m["repo"], m["rev"], settings)
        warning = (
            f"{text} is a moving revision: it resolved to commit {commit}, which the provenance records; "
            f"pin {m['repo']}@{commit} to build the same bytes again"
        )
        text = f"{m['repo']}@{commit}"
    hub = parse_hub_id(text)
    if hub is not None:
        folder = download_hub(*hub, settings=settings, progress=progress)
        sha = fetch(locate(folder, settings=settings), settings=settings, progress=progress).sha256
        return Source("hub", folder, sha, text, license_of(folder), warning)
    if REPO_RE.match(text) and not text.endswith(".gguf"):
        raise InputError(
            f"{text}: no such folder; as a Hugging Face repo it needs a pinned revision", PIN_HINT
        )
    return _lock_name(text, settings, progress)


def _local(art: Artifact, text: str, settings: Settings, progress: ProgressFn) -> Source:
    path = art.path.resolve()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(
                f"{path}: folder has no config.json, so it is not a Hugging Face model folder",
                "Point at a folder saved with save_pretrained, a .gguf file, or a models.lock name.",
            )
        sha = fetch(art, settings=settings, progress=progress).sha256
        return Source("hf", path, sha, text, license_of(path))
    from edgekit.runtime.gguf import read_gguf

    header = read_gguf(path)  # names a foreign or truncated file before anything else reads it
    sha = fetch(art, settings=settings, progress=progress).sha256
    return Source("gguf", path, sha, text, _gguf_license(header))


def _gguf_license(header: Any) -> str:
    found = header.metadata.get("general.license")
    return _spdx(found) if isinstance(found, str) and found.strip() else "unknown"


def inherited_license(spec: str, settings: Settings) -> str:
    """The license a derived entry inherits from the source ``spec`` names, without fetching anything:
    a models.lock entry's, or what a local GGUF or HF folder says; unknown otherwise."""
    from edgekit.models.lock import Lockfile

    lock = Lockfile.load(settings.lock_path)
    if spec in lock.models:
        return lock.models[spec].license
    path = Path(spec).expanduser()
    if path.is_dir():
        return license_of(path)
    if path.is_file():
        from edgekit.runtime.gguf import read_gguf

        try:
            return _gguf_license(read_gguf(path))
        except ModelFileError:
            return "unknown"
    return "unknown"


SPDX_CASE = {
    k.lower(): k
    for k in ("Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC-BY-4.0", "CC-BY-SA-4.0", "GPL-3.0")
}
LICENSE_LINE = re.compile(r"^license:\s*['\"]?([^'\"\n#]+?)['\"]?\s*$", re.MULTILINE)


def _spdx(name: str) -> str:
    name = name.strip()
    return SPDX_CASE.get(name.lower(), name)


def license_of(folder: Path) -> str:
    """An HF folder's license from its README's YAML front matter (``license: apache-2.0``), else unknown."""
    try:
        text = (folder / "README.md").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    if not text.startswith("---"):
        return "unknown"
    front = text[3:].split("\n---", 1)[0]
    m = LICENSE_LINE.search(front)
    return _spdx(m.group(1)) if m else "unknown"


def _lock_name(text: str, settings: Settings, progress: ProgressFn) -> Source:
    from edgekit.models.lock import Lockfile
    from edgekit.models.store import ModelStore

    if not NAME_RE.match(text):
        raise InputError(
            f"{text}: no such file or folder, and not a models.lock name or hub id",
            "Give an HF folder, a .gguf file, org/name@<commit>, or a name from 'edgekit models list'.",
        )
    lock = Lockfile.load(settings.lock_path)
    if text not in lock.models:
        raise UnknownModelError(
            f"{text}: no such file or folder, and models.lock ({settings.lock_path}) has no such entry"
        )
    entry = lock.get(text)
    if entry.format not in ("gguf", "hf"):
        raise InputError(
            f"{text} is an {entry.format} model; quantize needs a GGUF or Hugging Face source",
            "Quantize the model it was exported from instead.",
        )
    path = ModelStore(settings, lock).ensure(text, progress)  # the lock already read and checked above
    return Source("lock", path, entry.sha256, text, entry.license)


def hub_folder(settings: Settings, repo: str, revision: str) -> Path:
    return settings.cache_dir / "hub" / repo.replace("/", "--") / revision


def download_hub(repo: str, revision: str, *, settings: Settings, progress: ProgressFn = no_progress) -> Path:
    """Download the files a conversion needs from ``repo`` at ``revision`` (cached by revision)."""
    final = hub_folder(settings, repo, revision)
    if (final / "config.json").is_file():
        return final
    if settings.offline:
        raise OfflineError(
            f"{repo}@{revision} is not cached ({final}) and EDGEKIT_OFFLINE=1 forbids fetching"
        )
    from edgekit.files import atomic_output

    with atomic_output(final, folder=True) as tmp:
        if _has_hub_client():
            _snapshot(repo, revision, tmp, settings)
        else:
            _https_snapshot(repo, revision, tmp, settings, progress)
        if not (tmp / "config.json").is_file():
            raise ModelFileError(
                f"{repo}@{revision} has no config.json; it is not a Transformers model repo",
                "Pick a repo with config.json and safetensors weights.",
            )
    return final


def _has_hub_client() -> bool:
    import importlib.util

    return importlib.util.find_spec("huggingface_hub") is not None


def _snapshot(repo: str, revision: str, target: Path, settings: Settings) -> None:
    import shutil

    from huggingface_hub import snapshot_download
    from tqdm.auto import tqdm

    class Quiet(tqdm):
        """The library never prints: the client's own progress bars stay off."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    try:
        snapshot_download(
            repo_id=repo,
            revision=revision,
            local_dir=str(target),
            allow_patterns=list(HUB_PATTERNS),
            endpoint=settings.hf_endpoint,
            tqdm_class=Quiet,
        )
    except Exception as e:  # the client raises its own tree (HTTP, offline, not found) and OS errors
        raise DownloadError(
            f"cannot download {repo}@{revision}: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
            "Check the repo id, the commit, the network and HF_TOKEN for gated repos.",
        ) from None
    # The client's download bookkeeping (locks, timestamps) is not part of the model: keep it out of the hash.
    shutil.rmtree(target / ".cache", ignore_errors=True)


def _https_snapshot(repo: str, revision: str, target: Path, settings: Settings, progress: ProgressFn) -> None:
    """The hub's plain HTTPS API: list the revision's files, then fetch each matching one."""
    import fnmatch

    from edgekit.models.sources import http_download

    url, info = _revision_info(repo, revision, settings)
    try:
        names = [s["rfilename"] for s in info.get("siblings", [])]
    except (KeyError, TypeError, AttributeError):
        raise DownloadError(f"GET {url}: the reply is not the hub's model JSON") from None
    headers = _hub_headers()
    for name in names:
        if not any(fnmatch.fnmatch(Path(name).name, p) for p in HUB_PATTERNS):
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        http_download(
            f"{settings.hf_endpoint}/{repo}/resolve/{revision}/{name}", dest, progress, headers=headers
        )


def config_architectures(folder: Path) -> list[str]:
    """The ``architectures`` list of a HF folder's config.json."""
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{folder / 'config.json'}: unreadable ({e})") from None
    archs = data.get("architectures") or []
    return [str(a) for a in archs] if isinstance(archs, list) else []
