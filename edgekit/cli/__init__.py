"""The edgekit command line: a thin typer layer that parses, calls the public API, and renders."""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> None:
    """The ``edgekit`` command. Importing the commands takes a moment; an interrupt meanwhile is only
    noted (raising it inside an import can surface in a callback Python cannot hand back, with a
    traceback) and then exits 130 with one line, as it does once the commands run."""
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from edgekit.cli.app import main as run
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
    run(argv)
