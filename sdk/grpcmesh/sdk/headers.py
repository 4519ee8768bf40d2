"""Mesh metadata: names, the request-id context, and metadata helpers.

One place defines every header the mesh reads or writes, so the sidecar, the
client interceptors and the server interceptor cannot drift apart.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from random import getrandbits

__all__ = [
    "BAGGAGE",
    "CONNECTION_SPECIFIC",
    "HOP_BY_HOP",
    "MESH_SERVICE",
    "MESH_SOURCE",
    "REQUEST_ID",
    "TRACEPARENT",
    "TRACESTATE",
    "Metadata",
    "current_request_id",
    "ensure_request_id",
    "get",
    "names_a_service",
    "new_request_id",
    "request_id_var",
]

REQUEST_ID = "x-request-id"
MESH_SERVICE = "x-mesh-service"
MESH_SOURCE = "x-mesh-source"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
BAGGAGE = "baggage"

# Connection-specific fields (RFC 9113 §8.2.2): never relayed by any hop, HTTP/2 forbids them.
CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
# Metadata that must not be copied from one hop to the next;
# grpc-* reserved keys (timeout, encoding, status) are re-created by each hop.
HOP_BY_HOP = CONNECTION_SPECIFIC | {
    "te",
    "host",
    ":authority",
    "content-type",
    "user-agent",
    "content-length",
}

Metadata = Sequence[tuple[str, str | bytes]]


def names_a_service(host: str) -> bool:
    """Whether an ``:authority`` host is a mesh service's name rather than an address: the
    sidecar routes by such a host, and the SDK dials each target with its name as authority
    only when it is one (a name like ``3d-print`` or ``localhost`` goes in ``x-mesh-service``)."""
    return bool(host) and host != "localhost" and not host[0].isdigit() and host[0] != "["


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "grpcmesh_request_id", default=None
)


def new_request_id() -> str:
    """A fresh random UUID (version 4), the format Envoy and most tracers expect.

    From :func:`random.getrandbits`, not :func:`uuid.uuid4`: a request id
    correlates logs and is no secret, and ``uuid4`` reads the kernel's CSPRNG
    (a system call) and builds a ``UUID`` object per call - a tenth of a
    sidecar's CPU per call when the caller sent no id.
    """
    n = (getrandbits(128) & _V4_CLEAR) | _V4_SET
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_V4_CLEAR = ~((0xF << 76) | (0x3 << 62))  # the version nibble and the variant bits
_V4_SET = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant


def current_request_id() -> str | None:
    """The request id of the call being served in this task, if any."""
    return request_id_var.get()


def get(metadata: Iterable[tuple[str, str | bytes]] | None, key: str) -> str | None:
    """First value of ``key`` in ``metadata`` as text (keys are lower-case on the wire)."""
    for k, v in metadata or ():
        if k == key:
            return v.decode("latin-1") if isinstance(v, bytes) else v
    return None


def ensure_request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> tuple[str, bool]:
    """The incoming request id, or a new one; the flag says whether it was generated."""
    found = get(metadata, REQUEST_ID)
    if found:
        return found, False
    return new_request_id(), True
