"""The labeled safety set (``recipes/data/safety/``) and its fixed hash split.

Every example goes to ``train`` or ``heldout`` by the SHA-256 of its text (one in four held out), so
the split never depends on file order and an added example never moves another one. The head is trained
on ``train`` only; precision and recall are reported on ``heldout``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from edgekit.errors import InputError

Split = Literal["train", "heldout"]


def data_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "recipes" / "data" / "safety"


def split_of(text: str) -> Split:
    return "heldout" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 4 == 0 else "train"


def read_jsonl(path: Path, split: Split | None = None) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{n}: not JSON ({e})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InputError(f"{path}:{n}: each line must be an object with a 'text' string")
        if split is None or split_of(row["text"]) == split:
            rows.append(row)
    return rows
