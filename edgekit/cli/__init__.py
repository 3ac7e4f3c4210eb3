"""The edgekit command line: a thin typer layer that parses, calls the public API, and renders."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """The ``edgekit`` command. Importing the commands takes a moment; an interrupt then exits 130 with one
    line, as it does once they run."""
    try:
        from edgekit.cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
    run(argv)
