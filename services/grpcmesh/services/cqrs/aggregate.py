"""The event-sourced aggregate base: state changes only by applying events.

``trigger(event)`` applies a new event and keeps it as an uncommitted change;
``load(id, history)`` replays stored events without recording them. ``version``
counts applied events (0 = never created), so the stream revision of the last
event is ``version - 1`` and the expected revision of the next append follows.
Event handlers are methods named ``on_<EventTypeName>`` (the seed's ``onX``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

__all__ = ["Aggregate", "DomainError"]


class DomainError(Exception):
    """A business rule rejected a command; ``rule`` is a short machine-readable name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class Aggregate:
    """Base class: subclasses define ``on_<Event>`` handlers and command methods."""

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self._changes: list[Any] = []

    @classmethod
    def load(cls, aggregate_id: str, history: Iterable[Any]) -> Self:
        """The aggregate rebuilt from its stored events (no uncommitted changes)."""
        aggregate = cls(aggregate_id)
        for event in history:
            aggregate._apply(event)
        return aggregate

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def revision(self) -> int | None:
        """Stream revision of the last event applied (committed or not); None when new."""
        return self.version - 1 if self.version else None

    @property
    def changes(self) -> list[Any]:
        """Events triggered since load (the uncommitted changes)."""
        return list(self._changes)

    def mark_committed(self) -> None:
        self._changes.clear()

    def trigger(self, event: Any) -> None:
        """Applies a new event and records it as an uncommitted change."""
        self._apply(event)
        self._changes.append(event)

    def _apply(self, event: Any) -> None:
        handler = getattr(self, f"on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)
        self.version += 1
