"""Reading TOML files that pydantic validates (eval suites, task sets, cascade policies), with errors that
name the file, line and key, and suggest the closest valid key for a misspelt one."""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from edgekit.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_toml(path: Path, what: str, error: type[InputError] = InputError) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}", "Check the path.") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a {what}", "Point at the .toml file.") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    return text, parse_toml(text, path, error)


def parse_toml(text: str, where: Path | str, error: type[InputError] = InputError) -> dict[str, Any]:
    """``text`` as TOML; a syntax error is ``error`` naming ``where``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{where}: invalid TOML: {e}") from None


def line_of(text: str, loc: list[str]) -> int:
    """Line (1-based) of a key given as a path: the key inside its [table] header when found."""
    if not loc:
        return 1
    key = loc[-1]
    key_re = re.compile(rf"^[ \t]*\"?{re.escape(key)}\"?[ \t]*=", re.MULTILINE)
    table = [p for p in loc[:-1] if not p.isdigit()]
    if table:
        parts = r"\s*\.\s*".join(rf"\"?{re.escape(p)}\"?" for p in table)
        header = re.search(rf"^[ \t]*\[\[?\s*{parts}\s*\]\]?", text, re.MULTILINE)
        if header:
            nxt = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, header.end())
            m = key_re.search(text, header.end(), nxt.start() if nxt else len(text))
            return text.count("\n", 0, (m or header).start()) + 1
    m = key_re.search(text) or _table_header(text, loc)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _table_header(text: str, loc: list[str]) -> re.Match[str] | None:
    """The ``[a.b]`` or ``[[a.b]]`` header of a key that is itself a table (an unknown table, say)."""
    parts = r"\s*\.\s*".join(rf"\"?{re.escape(p)}\"?" for p in loc if not p.isdigit())
    return re.search(rf"^[ \t]*\[\[?\s*{parts}\s*[\].]", text, re.MULTILINE)


def validate(
    model: type[BaseModel], data: dict[str, Any], text: str, path: Path, error: type[InputError] = InputError
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # An unknown key is usually a typo that also leaves a required key missing: report the typo.
        first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        loc = [str(p) for p in first["loc"]]
        where = f"{path}:{line_of(text, loc)}: {'.'.join(loc) or '(top level)'}"
        if first["type"] == "extra_forbidden":
            known = _known_fields(model, loc[:-1])
            close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
            hint = f"Did you mean '{close[0]}'? " if close else ""
            raise error(
                f"{where}: unknown key",
                f"{hint}Known keys here: {', '.join(known) or '(none)'}.",
            ) from None
        got = first.get("input")
        shown = f" (got {got!r})" if isinstance(got, (int, float, str, bool)) else ""
        raise error(f"{where}: {first['msg']}{shown}") from None


def _known_fields(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the pydantic model reached by following ``loc`` (dict keys and list indexes skip)."""
    current: Any = model
    for part in loc:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            continue
        current = _model_in(field.annotation)
    return sorted(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
