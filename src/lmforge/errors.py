"""User-facing errors: one sentence that names the file, row or key, and the fix."""

from __future__ import annotations


class LmforgeError(Exception):
    """An error caused by the user's input or environment, shown without a traceback."""


class ConfigError(LmforgeError):
    """A config key is unknown, mistyped or out of range."""


class DataError(LmforgeError):
    """An input file cannot be read or one of its rows is unusable."""


def require(condition: bool, message: str, error: type[LmforgeError] = LmforgeError) -> None:
    """Raise ``error(message)`` unless ``condition`` holds."""
    if not condition:
        raise error(message)
