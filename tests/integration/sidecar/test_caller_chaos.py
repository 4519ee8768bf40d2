"""Every way a caller can walk away mid-call reaches the app as a cancellation and leaks nothing.

The caller is the ``h2`` library on a real loopback socket; the app is the echo server's
``Wait`` method (it blocks for an hour and counts its cancellations). After each
misbehaviour the app's call must be cancelled, the sidecar must hold no open stream on
either side, and a well-behaved call must still be served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import h2.config
import h2.connection
import h2.errors
import pytest

from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sidecar.app import Sidecar
from tests.support.echo import start_echo
from tests.support.inprocess import sidecar_config
from tests.support.procs import wait_for_async

WAIT = "/echo.v1.Echo/Wait"
MESSAGE = b"\x00\x00\x00\x00\x02hi"


class Caller:
    """One raw HTTP/2 connection to the sidecar's outbound with one call on stream 1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )

    @classmethod
    async def start(cls, port: int, body: bytes | None) -> Caller:
        caller = cls(*await asyncio.open_connection("127.0.0.1", port))
        caller.conn.initiate_connection()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", WAIT),
            (":authority", "echo"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("x-mesh-service", "echo"),
        ]
        caller.conn.send_headers(1, headers)
        if body is not None:
            caller.conn.send_data(1, body, end_stream=True)
        caller.flush()
        return caller

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def hang_up(caller: Caller) -> None:
    await caller.close()


async def reset_stream(caller: Caller) -> None:
    caller.conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
    caller.flush()


async def goaway_then_hang_up(caller: Caller) -> None:
    caller.conn.close_connection()
    caller.flush()
    await caller.close()


async def garbage_then_hang_up(caller: Caller) -> None:
    caller.writer.write(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01not-a-goaway")  # a malformed GOAWAY
    await caller.close()


Action = Callable[[Caller], Awaitable[None]]
CASES: list[Action] = [hang_up, reset_stream, goaway_then_hang_up, garbage_then_hang_up]


def _open_streams(sidecar: Sidecar) -> int:
    h2_state = sidecar.clusters_snapshot()["http2"]
    upstream = sum(p["streams"] for p in h2_state["upstream"].values())
    return int(h2_state["outbound_listener"]["streams"] + upstream)


@pytest.mark.parametrize("action", CASES, ids=[a.__name__ for a in CASES])
async def test_a_caller_walking_away_cancels_the_app_call_and_leaks_nothing(action: Action) -> None:
    server, port, echo = await start_echo()
    cfg = sidecar_config()
    sidecar = Sidecar(cfg, resolver=MemoryResolver({"echo": [Endpoint("127.0.0.1", port)]}))
    await sidecar.start()
    outbound = int(cfg.outbound.rsplit(":", 1)[1])
    caller: Caller | None = None
    try:
        caller = await Caller.start(outbound, MESSAGE)
        await wait_for_async(lambda: _true(echo.calls["Wait"] == 1), 10, what="the app to get the call")
        await action(caller)
        await wait_for_async(lambda: _true(echo.cancelled == 1), 10, what="the app's call to be cancelled")
        await wait_for_async(
            lambda: _true(_open_streams(sidecar) == 0), 10, what="the sidecar's streams to close"
        )
        async with grpc.aio.insecure_channel(cfg.outbound) as ch:
            md = (("x-mesh-service", "echo"),)
            assert await ch.unary_unary("/echo.v1.Echo/Unary")(b"next", metadata=md, timeout=10) == b"next"
    finally:
        if caller is not None:
            await caller.close()
        await sidecar.drain()
        await server.stop(0)


async def test_a_caller_gone_before_its_request_message_leaks_nothing() -> None:
    """Headers only, then the TCP connection ends: the app never saw a message, nothing stays open."""
    server, port, echo = await start_echo()
    cfg = sidecar_config()
    sidecar = Sidecar(cfg, resolver=MemoryResolver({"echo": [Endpoint("127.0.0.1", port)]}))
    await sidecar.start()
    try:
        caller = await Caller.start(int(cfg.outbound.rsplit(":", 1)[1]), None)
        await wait_for_async(
            lambda: _true(_open_streams(sidecar) == 2), 10, what="the call to reach upstream"
        )
        await caller.close()
        await wait_for_async(
            lambda: _true(_open_streams(sidecar) == 0), 10, what="the sidecar's streams to close"
        )
        assert echo.calls["Wait"] == 0
    finally:
        await sidecar.drain()
        await server.stop(0)


async def _true(value: bool) -> bool:
    return value
