"""The model store: models.lock (``lock.py``, edited by ``edit.py``), where each entry's bytes come from
(``sources.py``: PyPI wheel members, the hub, https, local files, or a build pass), the verified cache
(``store.py``, with the hash memo in ``verify.py``), and the one resolver from what a user names to an
artifact (``resolve.py``).

Its public names (``__all__``) import on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import exports

if TYPE_CHECKING:
    from edgekit.models.lock import Lockfile, ModelEntry
    from edgekit.models.resolve import Artifact, fetch, locate
    from edgekit.models.store import EntryStatus, ModelStore, Removal

__all__ = [
    "Artifact",
    "EntryStatus",
    "Lockfile",
    "ModelEntry",
    "ModelStore",
    "Removal",
    "fetch",
    "locate",
]

_PUBLIC: dict[str, tuple[str, str]] = {
    "Artifact": ("edgekit.models.resolve", "Artifact"),
    "EntryStatus": ("edgekit.models.store", "EntryStatus"),
    "Lockfile": ("edgekit.models.lock", "Lockfile"),
    "ModelEntry": ("edgekit.models.lock", "ModelEntry"),
    "ModelStore": ("edgekit.models.store", "ModelStore"),
    "Removal": ("edgekit.models.store", "Removal"),
    "fetch": ("edgekit.models.resolve", "fetch"),
    "locate": ("edgekit.models.resolve", "locate"),
}
__getattr__, __dir__ = exports(__name__, _PUBLIC)
