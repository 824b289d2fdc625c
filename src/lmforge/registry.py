"""Name -> object registries used by tasks, tuning methods, schedules and the zoo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from lmforge.errors import LmforgeError

T = TypeVar("T")


class Registry(Generic[T]):
    """A table of lowercase names to objects; lookups of unknown names list the known ones.

    Args:
        kind: What the entries are ("task", "tuning method"), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``; a duplicate name raises."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        if name != name.lower() or not name:
            raise ValueError(f"{self.kind} names must be non-empty and lowercase, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise an error listing the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise LmforgeError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
