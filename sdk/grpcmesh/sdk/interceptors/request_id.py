"""Client request-id interceptor: every outgoing call carries ``x-request-id``.

Inside a handler served by :class:`grpcmesh.sdk.Server` the incoming id is in
:data:`grpcmesh.sdk.headers.request_id_var`, so a call chain keeps one id end
to end; outside any request a fresh UUID4 starts a new chain. An id the caller
put in the metadata explicitly is left alone.
"""

from __future__ import annotations

import grpc

from grpcmesh.sdk.headers import REQUEST_ID, get, new_request_id, request_id_var
from grpcmesh.sdk.interceptors.base import RewritingInterceptor, replace_details, with_metadata

__all__ = ["RequestIdInterceptor"]


class RequestIdInterceptor(RewritingInterceptor):
    """Adds ``x-request-id``: the caller's explicit one, the current request's, or a new one."""

    def rewrite(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """Adds the request id unless the metadata already has one."""
        if get(details.metadata, REQUEST_ID):
            return details
        rid = request_id_var.get() or new_request_id()
        return replace_details(details, metadata=with_metadata(details, [(REQUEST_ID, rid)], overwrite=False))
