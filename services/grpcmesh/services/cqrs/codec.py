"""Domain events ↔ stored bytes: protobuf messages, typed by their message name.

The event store keeps ``type`` and opaque ``data``; the codec is the one place
that knows which message class a type name means, so unknown types fail loudly
instead of being silently mis-decoded.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message

__all__ = ["CONTENT_TYPE", "EventCodec", "UnknownEventType"]

CONTENT_TYPE = "application/x-protobuf"


class UnknownEventType(KeyError):
    """A stored event type the codec has no message class for."""


class EventCodec:
    """Encodes registered protobuf event messages; decodes by type name."""

    def __init__(self, types: Iterable[type[Message]]) -> None:
        self._by_name: dict[str, type[Message]] = {t.DESCRIPTOR.name: t for t in types}

    @property
    def type_names(self) -> list[str]:
        return sorted(self._by_name)

    def encode(self, event: Message) -> tuple[str, bytes]:
        name = event.DESCRIPTOR.name
        if name not in self._by_name:
            raise UnknownEventType(name)
        return name, event.SerializeToString(deterministic=True)

    def decode(self, type_name: str, data: bytes) -> Message:
        try:
            cls = self._by_name[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None
        return cls.FromString(data)
