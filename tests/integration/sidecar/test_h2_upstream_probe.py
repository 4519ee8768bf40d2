"""The dialling side notices an upstream that went silent mid-call (a pulled cable, a frozen host).

A real TCP peer completes the HTTP/2 handshake, then reads everything and answers
nothing (not even PING): the open call must hear "connection lost" after
``probe_after_s`` + ``probe_timeout_s``, not at its deadline.
"""

from __future__ import annotations

import asyncio

import pytest

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.client import Pool
from grpcmesh.sidecar.h2.connection import Stream
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.stream import CONNECTION_LOST

pytestmark = pytest.mark.timeout(30)


class Owner:
    def __init__(self) -> None:
        self.reset: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_headers(self, stream: Stream, headers: list[tuple[str, str]], end_stream: bool) -> None:
        pass

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        pass

    def on_reset(self, stream: Stream, code: int) -> None:
        if not self.reset.done():
            self.reset.set_result(code)


async def test_a_silent_upstream_is_probed_and_dropped_so_the_call_fails_over() -> None:
    received = bytearray()

    async def silent_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f.settings({}) + f.frame(f.FrameType.SETTINGS, f.Flag.ACK, 0, b""))
        while data := await reader.read(65536):  # reads everything, answers nothing more
            received.extend(data)

    server = await asyncio.start_server(silent_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool("127.0.0.1", port)
    try:
        conn = await pool.connect()
        owner = Owner()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", "/a.B/C"), (":authority", "a")]
        conn.open(owner, headers, True)
        limits = H2Limits()
        bound = limits.probe_after_s + limits.probe_timeout_s + 5.0
        code = await asyncio.wait_for(owner.reset, bound)
        assert code == CONNECTION_LOST
        assert conn.closed
        ping = f.frame(f.FrameType.PING, 0, 0, b"grpcmesh")
        assert bytes(received).count(ping) == 1  # one probe, then the connection was dropped
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
