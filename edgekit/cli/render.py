"""Rendering helpers shared by commands: consoles, progress bars, error lines."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from edgekit.errors import EncodingError
from edgekit.files import ProgressFn, no_progress

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


BYTE_STAGES = ("download", "extract", "verify", "hash")
"""Stages whose amounts are bytes; every other stage counts items (tokens, prompts, runs)."""


class _ByStage(ProgressColumn):
    """Renders bytes-stage tasks with one column and count-stage tasks with another."""

    def __init__(self, for_bytes: ProgressColumn, for_counts: ProgressColumn | None) -> None:
        super().__init__()
        self.for_bytes, self.for_counts = for_bytes, for_counts

    def render(self, task: Task) -> RenderableType:
        if str(task.description).startswith(BYTE_STAGES):
            return self.for_bytes.render(task)
        return self.for_counts.render(task) if self.for_counts else Text("")


@contextlib.contextmanager
def progress_bar() -> Iterator[ProgressFn]:
    """A ProgressFn that draws one bar per stage on stderr (nothing when stderr is not a terminal)."""
    if not err.is_terminal:
        yield no_progress
        return
    bars = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        _ByStage(DownloadColumn(), MofNCompleteColumn()),
        _ByStage(TransferSpeedColumn(), None),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def read_text_arg(value: str) -> str:
    """A prompt argument: '-' reads stdin as strict UTF-8; other values must be valid UTF-8 too."""
    if value == "-":
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EncodingError(
                f"stdin is not valid UTF-8 (byte {e.start}: {data[e.start : e.start + 1]!r})"
            ) from None
    return value
