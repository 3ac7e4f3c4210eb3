"""Checkpoints: everything a run needs to continue exactly where it stopped.

One file holds the student's weights, the optimizer state, the step, the position in the seeded data
stream, the RNG states, the pruning decision and the run's fingerprint. It is written atomically (a
temporary sibling renamed into place), so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from edgekit.errors import BackendError, InputError
from edgekit.files import atomic_output

VERSION = 1


def save(path: Path, state: dict[str, Any]) -> None:
    state = {
        **state,
        "version": VERSION,
        "rng_torch": torch.get_rng_state(),
        "rng_python": random.getstate(),
    }
    with atomic_output(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch's zip writer reports a full disk as a RuntimeError
            raise BackendError(
                f"cannot write the checkpoint {path} ({str(e).splitlines()[0][:160]})",
                f"Check free space on {path.parent}; the previous checkpoint, if any, is intact.",
            ) from None


def load(path: Path, fingerprint: str) -> dict[str, Any]:
    """The checkpoint at ``path``, after checking it belongs to a run with this ``fingerprint``."""
    if not path.is_file():
        raise InputError(
            f"resume: no checkpoint at {path}", "Start without resume=True, or pass checkpoint_dir=DIR."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises a variety (pickle, zip, runtime) for a damaged file
        raise InputError(
            f"{path}: not a readable checkpoint ({type(e).__name__})",
            "Delete it and start without resume=True.",
        ) from None
    if not isinstance(state, dict) or state.get("version") != VERSION:
        raise InputError(f"{path}: not an edgekit distillation checkpoint", "Start without resume=True.")
    if state.get("fingerprint") != fingerprint:
        raise InputError(
            f"{path} is a checkpoint of another run (teacher, data or settings differ)",
            "Resume with the same teacher, data and options, or use another checkpoint_dir=DIR.",
        )
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng_torch"])
    random.setstate(_as_tuple(state["rng_python"]))


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples; a round trip through torch.load may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
