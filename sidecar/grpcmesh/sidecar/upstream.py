"""Opening upstream calls for the stream path, and feeding their request streams.

Split from :mod:`proxy` so the forwarding logic reads top to bottom; these are
the two places that touch grpc.aio's call API directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from grpcmesh.sdk.idempotency import CallKind

__all__ = ["open_call", "pump"]

Md = list[tuple[str, str | bytes]]


async def pump(call: Any, messages: AsyncIterator[bytes]) -> None:
    """Feeds a request stream to an upstream call.

    grpc.aio's own request feeding (and ``call.write``) overwrite the upstream's
    real status with INTERNAL "Internal error from Core" when a write races
    with the server ending the call early (grpc/grpc#36066), which would turn
    e.g. UNIMPLEMENTED into INTERNAL at the caller. Here a failed write just
    ends the pump, and the call's real status reaches the caller unchanged.
    """
    try:
        await call.wait_for_connection()
    except grpc.aio.AioRpcError:
        return
    cython_call = getattr(call, "_cython_call", None)
    send = getattr(cython_call, "send_serialized_message", None)
    try:
        async for msg in messages:
            if call.done():
                return
            await (call.write(msg) if send is None else send(msg))
        if not call.done():
            await call.done_writing()
    except asyncio.CancelledError:
        raise
    except Exception:  # the call ended under us: its status tells the story
        return


def open_call(
    channel: grpc.aio.Channel,
    method: str,
    kind: CallKind,
    request: bytes | AsyncIterator[bytes] | None,
    metadata: Md,
    timeout: float | None,
) -> Any:
    if kind is CallKind.UNARY_STREAM:
        return channel.unary_stream(method, None, None)(
            request,  # type: ignore[arg-type]
            metadata=metadata,
            timeout=timeout,
        )
    if kind is CallKind.STREAM_UNARY:
        return channel.stream_unary(method, None, None)(
            request,  # type: ignore[arg-type]
            metadata=metadata,
            timeout=timeout,
        )
    if isinstance(request, bytes):  # unknown kind, single request: send it as a one-message stream
        request = _one(request)
    return channel.stream_stream(method, None, None)(
        request,  # type: ignore[arg-type]
        metadata=metadata,
        timeout=timeout,
    )


async def _one(message: bytes) -> AsyncIterator[bytes]:
    yield message
