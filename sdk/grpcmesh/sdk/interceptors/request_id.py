"""Client request-id interceptor: every outgoing call carries ``x-request-id``.

Inside a handler served by :class:`grpcmesh.sdk.Server` the incoming id is in
:data:`grpcmesh.sdk.headers.request_id_var`, so a call chain keeps one id end
to end; outside any request a fresh UUID4 starts a new chain. An id the caller
put in the metadata explicitly is left alone.
"""

from __future__ import annotations

from typing import Any

import grpc

from grpcmesh.sdk.headers import REQUEST_ID, new_request_id, request_id_var
from grpcmesh.sdk.interceptors.base import RewritingInterceptor, replace_details

__all__ = ["RequestIdInterceptor", "add_request_id"]


def add_request_id(metadata: list[tuple[str, Any]]) -> None:
    """Appends ``x-request-id`` to ``metadata`` unless it has the key: the current request's, or a new one."""
    for k, _ in metadata:
        if k == REQUEST_ID:
            return
    metadata.append((REQUEST_ID, request_id_var.get() or new_request_id()))


class RequestIdInterceptor(RewritingInterceptor):
    """Adds ``x-request-id``: the caller's explicit one, the current request's, or a new one."""

    def rewrite(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """Adds the request id unless the metadata already has one."""
        metadata = list(details.metadata or ())
        before = len(metadata)
        add_request_id(metadata)
        if len(metadata) == before:
            return details
        return replace_details(details, metadata=grpc.aio.Metadata(*metadata))
