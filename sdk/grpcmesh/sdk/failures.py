"""What an attempt's outcome says about the endpoint: the one failure classification.

Written once and used by both paths (the sidecar's relay and direct mode), so
the same status means the same thing everywhere. An endpoint is judged only
on what says something about it:

- ``NOT_REACHED``: the request was never delivered to an application
  (connect failure, refused stream, GOAWAY before the stream, the remote
  sidecar could not reach its app - ``x-mesh-not-reached``). Counts against
  the endpoint and may be retried for any method (gRPC's transparent retry).
- ``ENDPOINT``: the exchange broke after it was sent (reset, connection lost,
  a timeout seen by the caller) or the upstream answered UNAVAILABLE. Counts
  against the endpoint.
- ``APPLICATION``: any other status the app put in its trailers. Says nothing
  about the endpoint unless a service's config lists that code
  (``breaker.app_failure_codes``); a healthy app answering UNKNOWN is still
  healthy.
- ``LOCAL``: a status a sidecar made about the call itself (message too
  large, no route, its own breaker), marked with ``x-mesh-local`` so no other
  sidecar counts it against the endpoint it came through.
- ``CANCELLED``: the caller gave up; neutral.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import grpc

__all__ = [
    "LOCAL",
    "LOCAL_TRAILER",
    "NOT_REACHED",
    "NOT_REACHED_TRAILER",
    "PUSHBACK",
    "Kind",
    "classify",
    "classify_error",
    "counts_against_endpoint",
    "markers",
    "never_reached",
    "parse_pushback",
]

# Trailer a sidecar adds when it could not deliver the request to its app.
NOT_REACHED = "x-mesh-not-reached"
NOT_REACHED_TRAILER: tuple[str, str] = (NOT_REACHED, "1")
# Trailer a sidecar adds to a status it generated itself (not the app's, not the endpoint's).
LOCAL = "x-mesh-local"
LOCAL_TRAILER: tuple[str, str] = (LOCAL, "1")
# Server pushback (gRFC A6): milliseconds to wait before a retry; negative/malformed: do not retry.
PUSHBACK = "grpc-retry-pushback-ms"

_OK = grpc.StatusCode.OK
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED

# Details fragments grpc core uses when no byte left this process for the server.
_CONNECT_FAILURES = (
    "failed to connect",
    "connection refused",
    "connections to all backends failing",
    "no healthy endpoint",
    "breaker open",
    "no endpoints",
    "dns resolution failed",
)
# ... and when an exchange broke in the transport rather than in the app.
_TRANSPORT_FAILURES = ("rst_stream", "goaway", "socket closed", "connection reset", "stream removed")


class Kind(enum.IntEnum):
    OK = 0
    NOT_REACHED = 1
    ENDPOINT = 2
    APPLICATION = 3
    LOCAL = 4
    CANCELLED = 5


_NOT_REACHED = Kind.NOT_REACHED
_ENDPOINT = Kind.ENDPOINT
_APPLICATION = Kind.APPLICATION
_LOCAL = Kind.LOCAL
_CANCELLED = Kind.CANCELLED
_OK_KIND = Kind.OK


def classify(
    code: grpc.StatusCode,
    *,
    not_reached: bool = False,
    local: bool = False,
    transport: bool = False,
    cancelled: bool = False,
) -> Kind:
    """The kind of one attempt's outcome.

    ``transport``: the status was read from the transport (reset, lost
    connection, the caller's deadline), not from trailers. ``cancelled``: the
    caller went away. Markers win over codes: a not-reached UNAVAILABLE that a
    sidecar generated is still about the endpoint behind it.
    """
    if cancelled:
        return _CANCELLED
    if not_reached:
        return _NOT_REACHED
    if code is _OK:
        return _OK_KIND
    if local:
        return _LOCAL
    if transport or code is _UNAVAILABLE:
        return _ENDPOINT
    return _APPLICATION


def counts_against_endpoint(kind: Kind, code: grpc.StatusCode, app_codes: frozenset[grpc.StatusCode]) -> bool:
    """Whether the outcome feeds the endpoint's breaker / outlier detection as a failure."""
    if kind is _NOT_REACHED or kind is _ENDPOINT:
        return True
    return kind is _APPLICATION and code in app_codes


def parse_pushback(value: str | bytes | None) -> float | None:
    """``grpc-retry-pushback-ms`` in seconds; -1.0 means "do not retry", None when absent."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.isdigit() or len(text) > 10:  # negative, malformed or absurd: stop (gRFC A6)
        return -1.0
    return int(text) / 1000.0


def markers(trailers: Iterable[tuple[str, str | bytes]]) -> tuple[bool, bool, float | None]:
    """(not reached, local, pushback seconds) read from a trailers block in one pass."""
    not_reached = local = False
    pushback = None
    for item in trailers:
        key = item[0]
        if key == NOT_REACHED:
            not_reached = True
        elif key == LOCAL:
            local = True
        elif key == PUSHBACK:
            pushback = parse_pushback(item[1])
    return not_reached, local, pushback


def never_reached(err: grpc.aio.AioRpcError) -> bool:
    """True when ``err`` shows the request was never delivered to an application."""
    if err.code() is not _UNAVAILABLE:
        return False
    trailers: Any = err.trailing_metadata() or ()
    for item in trailers:
        if item[0] == NOT_REACHED:
            return True
    details = (err.details() or "").lower()
    return any(frag in details for frag in _CONNECT_FAILURES)


def classify_error(err: grpc.aio.AioRpcError) -> tuple[Kind, float | None]:
    """(kind, pushback seconds) of a failed grpc-python call (direct mode)."""
    code = err.code()
    trailers: Any = err.trailing_metadata() or ()
    not_reached, local, pushback = markers(trailers)
    if not not_reached and code is _UNAVAILABLE:
        not_reached = never_reached(err)
    details = (err.details() or "").lower()
    transport = code is _DEADLINE or any(frag in details for frag in _TRANSPORT_FAILURES)
    cancelled = code is grpc.StatusCode.CANCELLED and "locally cancelled" in details
    kind = classify(code, not_reached=not_reached, local=local, transport=transport, cancelled=cancelled)
    return kind, pushback
