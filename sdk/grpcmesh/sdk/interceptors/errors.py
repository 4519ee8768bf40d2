"""Client error mapping: what a failed call raises in application code.

Every failure surfaces as a typed :class:`grpcmesh.sdk.errors.MeshError`
subclass (``NotFound``, ``Unavailable``, …) with the code, details, rich
``google.rpc.Status`` details and the request id, chained to the original
exception. The request id falls back to the one that was sent when the server
(or a proxy) did not echo it in the trailers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import grpc

from grpcmesh.sdk.errors import MeshError, from_rpc_error

__all__ = ["map_errors", "to_mesh_error"]


def to_mesh_error(exc: BaseException, *, request_id: str | None = None) -> MeshError | None:
    """The typed exception for ``exc``, or ``None`` when it is not an RPC failure."""
    if isinstance(exc, MeshError):
        err = exc
    elif isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        err = from_rpc_error(exc)
    else:
        return None
    if err.request_id is None:
        err.request_id = request_id
    return err


@contextlib.contextmanager
def map_errors(*, request_id: str | Callable[[], str | None] | None = None) -> Iterator[None]:
    """Re-raises RPC failures inside the block as typed :class:`MeshError` subclasses.

    ``request_id`` (or a function returning it, read when the error happens) is
    the id the call was sent with, used when the error does not carry one.
    """
    try:
        yield
    except Exception as exc:
        sent = request_id() if callable(request_id) else request_id
        err = to_mesh_error(exc, request_id=sent)
        if err is None or err is exc:
            raise
        raise err from exc
