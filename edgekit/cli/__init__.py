"""The edgekit command line: a thin typer layer that parses, calls the public API, and renders."""
