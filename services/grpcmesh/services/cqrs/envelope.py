"""Checks shared by both buses: UUID ids, ``google.protobuf.Any`` payloads routed by type URL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Protocol, TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from grpcmesh.services.cqrs.rejection import Rejected, invalid

__all__ = ["ID_PATTERN", "Route", "check_id", "check_metadata", "check_uuid", "type_url_of", "unpack"]


class Route(Protocol):
    @property
    def message_type(self) -> type[Message]: ...


H = TypeVar("H", bound=Route)
# What may appear after "<category>-" in a stream id: no whitespace, bounded.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def type_url_of(message_type: type[Message]) -> str:
    return f"type.googleapis.com/{message_type.DESCRIPTOR.full_name}"


def check_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise invalid({field: "is required (a UUID string)"})
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid({field: f"must be a UUID string, got {value[:60]!r}"}) from None


def check_id(value: str, field: str) -> str:
    if not value:
        raise invalid({field: "is required"})
    if not ID_PATTERN.fullmatch(value):
        raise invalid({field: "must be 1..128 of letters, digits, '.', '_', ':', '@', '-'"})
    return value


def check_metadata(metadata: Mapping[str, str], field: str = "metadata", max_bytes: int = 16 * 1024) -> None:
    if "" in metadata:
        raise invalid({field: "keys must not be empty"})
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > max_bytes:
        raise invalid({field: f"must be at most {max_bytes} bytes of keys and values, got {size}"})


def unpack(payload: any_pb2.Any, has_payload: bool, routes: Mapping[str, H]) -> tuple[H, Message]:
    """The route for the payload's type URL and the unpacked message.

    Raises INVALID_ARGUMENT (``payload`` / ``payload.value``) for a missing or garbled
    payload, NOT_FOUND naming ``payload.type_url`` when nothing handles the type.
    """
    if not has_payload or not payload.type_url:
        raise invalid({"payload": "is required (a google.protobuf.Any with a registered type URL)"})
    route = routes.get(payload.type_url)
    if route is None:
        known = ", ".join(sorted(routes)) or "none"
        raise Rejected(
            "NOT_FOUND",
            f"payload.type_url {payload.type_url!r} has no handler (known: {known})",
            violations={"payload.type_url": "no handler is registered for this type"},
        )
    message = route.message_type()
    try:
        message.ParseFromString(payload.value)
    except DecodeError as err:
        raise invalid({"payload.value": f"does not decode as {payload.type_url}: {err}"}) from None
    return route, message
