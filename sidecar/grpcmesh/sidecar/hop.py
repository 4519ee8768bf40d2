"""What crosses one hop of the mesh and what does not, defined once for both listeners and the relay.

- :data:`SET_PER_HOP`: request fields each hop sets itself (``te``, ``host``,
  ``grpc-timeout`` from the remaining deadline) and never copies; connection-specific fields
  (RFC 9113 §8.2.2) never get this far: the HTTP/2 layer refuses any block that carries one
  (``h2.validate``), so the relay passes response headers and trailers on as they are;
- the mesh's own trailers (:mod:`grpcmesh.sdk.failures`: not reached, local)
  as ready-made header lists;
- :class:`CallRecord`: one slotted record per relayed call, what telemetry
  reads when the call ends (replaces loose tuples and long argument lists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from grpcmesh.sdk.failures import LOCAL_TRAILER, NOT_REACHED_TRAILER, markers
from grpcmesh.sidecar.h2.connection import Headers
from grpcmesh.sidecar.h2.grpcwire import decode_message, status_code

if TYPE_CHECKING:
    from grpcmesh.sdk.endpoint_state import EndpointState
    from grpcmesh.sidecar.spans import CallSpan

__all__ = [
    "LOCAL_MD",
    "NOT_REACHED_MD",
    "SET_PER_HOP",
    "CallRecord",
    "TrailerStatus",
    "trailer_status",
]

SET_PER_HOP = frozenset({"host", "te", "grpc-timeout"})
NOT_REACHED_MD: Headers = [NOT_REACHED_TRAILER]
LOCAL_MD: Headers = [LOCAL_TRAILER]


class CallRecord:
    """One relayed call as telemetry sees it; ``started`` is None until the call is counted in flight."""

    __slots__ = (
        "attempts",
        "code",
        "direction",
        "endpoint",
        "method",
        "request_id",
        "service",
        "span",
        "started",
    )

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.service = ""
        self.method = ""
        self.request_id = ""
        self.span: CallSpan | None = None
        self.started: float | None = None
        self.attempts = 0
        self.code = grpc.StatusCode.OK
        self.endpoint: EndpointState | None = None  # of the last attempt


class TrailerStatus:
    """The status of a trailers block and the mesh markers it carries."""

    __slots__ = ("code", "local", "message", "not_reached", "pushback")

    def __init__(self, headers: Headers) -> None:
        code = message = None
        for k, v in headers:
            if k == "grpc-status":
                code = v
            elif k == "grpc-message":
                message = v
        self.code = status_code(code)
        self.message = decode_message(message) if message else ""
        self.not_reached, self.local, self.pushback = markers(headers)


def trailer_status(headers: Headers) -> TrailerStatus:
    return TrailerStatus(headers)
