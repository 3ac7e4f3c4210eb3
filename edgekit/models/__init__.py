"""The model store: models.lock (``lock.py``, edited by ``edit.py``), where each entry's bytes come from
(``sources.py``: PyPI wheel members, the hub, https, local files, or a build pass), the verified cache
(``store.py``, with the hash memo in ``verify.py``), and the one resolver from what a user names to an
artifact (``resolve.py``)."""
