"""The package version, in one place (the facade and reports read it from here)."""

__version__ = "0.1.0"
