"""RFC 9113 §8 checks of whole header blocks, and what gRPC makes of a request that is not gRPC.

Field-by-field checks (name case and characters, values) happen while decoding
(:mod:`hpack_in`); here are the rules about a block as a whole: pseudo-headers
first, each once, only those of a request (or of a response), the required
ones present, no connection-specific fields, ``te`` only ``trailers``, a
numeric ``content-length``, trailers without pseudo-headers. A block that breaks
one is malformed: the stream is reset with PROTOCOL_ERROR before anything is
relayed (§8.1.1).

A well-formed request that is not gRPC gets what grpc-go answers
(internal/transport/http2_server.go): a content-type other than
``application/grpc[+proto|;...]`` gets HTTP 415 with grpc-status
INVALID_ARGUMENT, any method but POST HTTP 405 with grpc-status INTERNAL.
"""

from __future__ import annotations

import grpc

from grpcmesh.sdk.headers import CONNECTION_SPECIFIC
from grpcmesh.sidecar.h2.stream import Headers

__all__ = ["Request", "check_request", "check_response", "check_trailers", "grpc_refusal"]

_PSEUDO_BIT = {":method": 1, ":path": 2, ":scheme": 4, ":authority": 8}  # the request's pseudo-headers
# RFC 9113 §8.2.2: CONNECTION_SPECIFIC fields make any field block malformed (``te`` is allowed
# in a request with the value "trailers").


_CONTENT_TYPE, _TE, _CONTENT_LENGTH, _CONNECTION = range(4)
_SPECIAL = {"content-type": _CONTENT_TYPE, "te": _TE, "content-length": _CONTENT_LENGTH}
_SPECIAL.update(dict.fromkeys(CONNECTION_SPECIFIC, _CONNECTION))


class Request:
    """What the checks learnt of a request: its method, content-type, content-length."""

    __slots__ = ("content_length", "content_type", "method")

    def __init__(self) -> None:
        self.method = ""
        self.content_type: str | None = None
        self.content_length: int | None = None


def check_request(headers: Headers, request: Request) -> str | None:
    """Why the request block is malformed (None: it is not); fills ``request``."""
    seen = 0
    regular = False
    path = scheme = None
    for name, value in headers:
        if name[0] == ":":
            bit = _PSEUDO_BIT.get(name)
            if bit is None:
                return f"pseudo-header {name} is not allowed in a request"
            if regular or seen & bit:
                return f"pseudo-header {name} repeated or after a regular field"
            seen |= bit
            if bit == 1:
                request.method = value
            elif bit == 2:
                path = value
            elif bit == 4:
                scheme = value
            continue
        regular = True
        special = _SPECIAL.get(name)
        if special is None:
            continue
        if special == _CONTENT_TYPE:
            request.content_type = value
        elif special == _TE:
            if value != "trailers":
                return "te may only be 'trailers'"
        elif special == _CONTENT_LENGTH:
            if not value.isdigit() or request.content_length is not None:
                return "content-length is not one number"
            request.content_length = int(value)
        else:
            return f"connection-specific field {name}"
    if not request.method:
        return "missing :method"
    if request.method != "CONNECT":
        if scheme is None:
            return "missing :scheme"
        if not path:
            return "missing or empty :path"
    return None


def check_response(headers: Headers) -> str | None:
    """Why a response block is malformed: exactly one :status first, no request pseudo-headers."""
    status = None
    for i, (name, value) in enumerate(headers):
        if name[0] != ":":
            if name in CONNECTION_SPECIFIC:
                return f"connection-specific field {name}"
            continue
        if name != ":status" or i:
            return f"pseudo-header {name} is not allowed here in a response"
        status = value
    if status is None or len(status) != 3 or not status.isdigit():
        return "missing or invalid :status"
    return None


def check_trailers(headers: Headers) -> str | None:
    """Why a trailers block is malformed: a pseudo-header or a connection-specific field."""
    for name, _ in headers:
        if name[0] == ":":
            return f"pseudo-header {name} in trailers"
        if name in CONNECTION_SPECIFIC:
            return f"connection-specific field {name} in trailers"
    return None


def grpc_refusal(request: Request) -> tuple[int, grpc.StatusCode, str] | None:
    """(HTTP status, grpc-status, message) for a request gRPC does not serve, as grpc-go answers."""
    ctype = request.content_type
    if ctype is None or not (
        ctype == "application/grpc" or (ctype.startswith("application/grpc") and ctype[16] in "+;")
    ):
        return 415, grpc.StatusCode.INVALID_ARGUMENT, f'invalid gRPC request content-type "{ctype or ""}"'
    if request.method != "POST":
        msg = f'Received a HEADERS frame with :method "{request.method}" which should be POST'
        return 405, grpc.StatusCode.INTERNAL, msg
    return None
