"""Every way an upstream can break an HTTP/2 exchange ends the call with a status, never a hang.

The calls carry no deadline, so a stream the sidecar forgets to end would hang for ever
(the test's own bound turns that into a failure). The upstream is the ``h2`` library on
a real loopback socket, misbehaving in one way per case, on every connection; a healthy
echo service behind the same sidecar must keep answering afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import pytest

from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sidecar.app import Sidecar
from tests.support.echo import start_echo
from tests.support.inprocess import sidecar_config

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GRPC = [("content-type", "application/grpc")]


async def _until_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[h2.connection.H2Connection, int]:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while True:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("caller went away")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                writer.write(conn.data_to_send())
                return conn, ev.stream_id
        writer.write(conn.data_to_send())


async def _serve_out(
    reader: asyncio.StreamReader,
    conn: h2.connection.H2Connection,
    writer: asyncio.StreamWriter,
    each_request: Callable[[h2.connection.H2Connection, int], None] | None = None,
) -> None:
    """Keeps the connection open until the sidecar hangs up, doing ``each_request`` to later streams too."""
    writer.write(conn.data_to_send())
    while data := await reader.read(1 << 16):
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived) and each_request is not None:
                each_request(conn, ev.stream_id)
        writer.write(conn.data_to_send())


async def _per_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    act: Callable[[h2.connection.H2Connection, int], None],
) -> None:
    conn, sid = await _until_request(reader, writer)
    act(conn, sid)
    await _serve_out(reader, conn, writer, act)


async def close_on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return


async def close_after_preface(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(24)


async def not_http2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
    await reader.read(1 << 16)


async def close_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _until_request(reader, writer)


async def close_after_response_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn, sid = await _until_request(reader, writer)
    conn.send_headers(sid, [(":status", "200"), *GRPC])
    writer.write(conn.data_to_send())


async def refuse_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _per_stream(
        reader, writer, lambda conn, sid: conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
    )


async def reset_stream_internal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _per_stream(
        reader, writer, lambda conn, sid: conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
    )


async def goaway_and_stay_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn, _ = await _until_request(reader, writer)
    conn.close_connection(last_stream_id=0)  # "processed nothing" — and never closes the socket
    await _serve_out(reader, conn, writer)


def _truncated(conn: h2.connection.H2Connection, sid: int) -> None:
    conn.send_headers(sid, [(":status", "200"), *GRPC])
    conn.send_data(sid, b"\x00\x00\x00\x00\x10abc")  # announces 16 bytes, sends 3
    conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)


async def truncated_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _per_stream(reader, writer, _truncated)


def _no_status(conn: h2.connection.H2Connection, sid: int) -> None:
    conn.send_headers(sid, [(":status", "200"), *GRPC])
    conn.send_headers(sid, [("x-nothing", "here")], end_stream=True)


async def trailers_without_status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _per_stream(reader, writer, _no_status)


UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE}
BROKEN_REPLY = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}
CASES: list[tuple[Behaviour, set[grpc.StatusCode]]] = [
    (close_on_accept, UNAVAILABLE),
    (close_after_preface, UNAVAILABLE),
    (not_http2, UNAVAILABLE),
    (close_after_request, UNAVAILABLE),
    (close_after_response_headers, UNAVAILABLE),
    (refuse_stream, UNAVAILABLE),
    (reset_stream_internal, BROKEN_REPLY),
    (goaway_and_stay_open, UNAVAILABLE),
    (truncated_message, {grpc.StatusCode.INTERNAL}),  # direct, grpc-python says OK and returns None
    (trailers_without_status, BROKEN_REPLY),
]


class Chaos:
    """A loopback server running one misbehaviour on every connection."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, h2.exceptions.ProtocolError):
            pass  # the sidecar hung up, or spoke after our GOAWAY
        finally:
            self._handlers.discard(task)
            writer.close()

    async def stop(self) -> None:
        self.server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


@pytest.mark.parametrize(("behaviour", "expected"), CASES, ids=[b.__name__ for b, _ in CASES])
async def test_a_broken_upstream_ends_the_call_with_a_status(
    behaviour: Behaviour, expected: set[grpc.StatusCode]
) -> None:
    chaos = Chaos(behaviour)
    chaos_port = await chaos.start()
    echo_server, echo_port, _ = await start_echo()
    cfg = sidecar_config()
    resolver = MemoryResolver(
        {"chaos": [Endpoint("127.0.0.1", chaos_port)], "echo": [Endpoint("127.0.0.1", echo_port)]}
    )
    sidecar = Sidecar(cfg, resolver=resolver)
    await sidecar.start()
    try:
        async with grpc.aio.insecure_channel(cfg.outbound) as ch:
            unary = ch.unary_unary("/echo.v1.Echo/Unary")
            for _ in range(3):  # the first dial, then pooled or re-dialled connections
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    async with asyncio.timeout(20):  # the bound only: the call itself has no deadline
                        await unary(b"x", metadata=(("x-mesh-service", "chaos"),))
                assert info.value.code() in expected, (info.value.code(), info.value.details())
                assert info.value.details()
            assert chaos.connections >= 1
            reply = await unary(b"still serving", metadata=(("x-mesh-service", "echo"),), timeout=10)
            assert reply == b"still serving"
    finally:
        await sidecar.drain()
        await chaos.stop()
        await echo_server.stop(0)
