"""The data plane's HTTP/2 against an independent implementation (the ``h2`` library) as the peer.

gRPC clients exercise only a subset of HTTP/2; these cases drive the rest
over a real loopback socket: CONTINUATION, padding, PING, a peer that shrinks
the frame size and HPACK table, flow control the peer hands out slowly, and
a broken preface.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.server import H2Server


class EchoOwner:
    """Answers each stream with its own request headers (as x-echo-*) and data, then trailers."""

    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        raise AssertionError("no request trailers expected")

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        stream.send_data(data, False, stream)
        if end_stream:
            stream.send_headers([("grpc-status", "0")], True)

    def on_reset(self, stream: Stream, code: int) -> None:
        pass


def handler(stream: Stream, headers: Headers, end_stream: bool) -> None:
    stream.owner = EchoOwner()
    if (":path", "/t.v1.T/Reset") in headers:
        stream.reset()
        return
    echoed = [(f"x-echo-{k[1:] if k[0] == ':' else k}", v) for k, v in headers]
    stream.send_headers([(":status", "200"), *echoed])
    if end_stream:
        stream.send_headers([("grpc-status", "0")], True)


class Peer:
    """A blocking h2 client on a real socket, driven from a worker thread."""

    def __init__(self, port: int, settings: dict[int, int] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        seen = False
        while not seen:  # the server's SETTINGS (its windows) before any request
            data = self.sock.recv(1 << 16)
            assert data, "connection closed during the handshake"
            seen = any(isinstance(ev, h2.events.RemoteSettingsChanged) for ev in self.conn.receive_data(data))
            self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def until_ended(
        self, stream_id: int, *, ack: bool = True
    ) -> tuple[dict[str, str], bytes, dict[str, str]]:
        headers: dict[str, str] = {}
        trailers: dict[str, str] = {}
        body = bytearray()
        while True:
            data = self.sock.recv(1 << 16)
            assert data, "connection closed"
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream_id:
                    headers = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == stream_id:
                    body += ev.data
                    if ack:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, stream_id)
                elif isinstance(ev, h2.events.TrailersReceived) and ev.stream_id == stream_id:
                    trailers = dict(ev.headers)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream_id:
                    self.flush()
                    return headers, bytes(body), trailers
            self.flush()

    def request(
        self, stream_id: int, extra: Headers = (), end: bool = False, path: str = "/t.v1.T/M"
    ) -> None:  # type: ignore[assignment]
        base = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "t")]
        base.append(("content-type", "application/grpc"))
        self.conn.send_headers(stream_id, [*base, *extra], end_stream=end)


@pytest.fixture
async def server() -> AsyncIterator[H2Server]:
    srv = H2Server(handler)
    await srv.listen("127.0.0.1", 0)
    yield srv
    await srv.stop(1.0)


async def in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(asyncio.to_thread(fn, *args), 20)


async def test_continuation_padding_and_ping(server: H2Server) -> None:
    def run() -> None:
        peer = Peer(server.port)
        big = [(f"x-big-{i}", "v" * 1000) for i in range(40)]  # ~40 KB: HEADERS + CONTINUATION frames
        peer.request(1, big)
        peer.conn.send_data(1, b"padded body", end_stream=True, pad_length=17)
        peer.conn.ping(b"12345678")
        peer.flush()
        headers, body, trailers = peer.until_ended(1)
        assert headers["x-echo-x-big-39"] == "v" * 1000
        assert headers["x-echo-path"] == "/t.v1.T/M"
        assert body == b"padded body"
        assert trailers["grpc-status"] == "0"

    await in_thread(run)


async def test_peer_shrinks_hpack_table_and_hands_out_window_slowly(server: H2Server) -> None:
    def run() -> None:
        small = {
            h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000,
        }
        peer = Peer(server.port, small)
        body = bytes(range(256)) * 800  # 200 KB back through a 1000-byte window: queued, then drained
        peer.request(1)
        for at in range(0, len(body), 16_384):
            peer.conn.send_data(1, body[at : at + 16_384], end_stream=at + 16_384 >= len(body))
        peer.flush()
        _, echoed, trailers = peer.until_ended(1)
        assert echoed == body
        assert trailers["grpc-status"] == "0"

    await in_thread(run)


async def test_frames_racing_a_reset_do_not_break_the_connection(server: H2Server) -> None:
    """HEADERS/DATA that were in flight when the server reset their stream are dropped quietly."""

    def run() -> None:
        peer = Peer(server.port)
        peer.request(1, [("x-huge", "h" * 300)], path="/t.v1.T/Reset")
        peer.conn.send_data(1, b"late data")
        peer.conn.send_headers(1, [("x-late-trailer", "t" * 300)], end_stream=True)  # updates HPACK state
        peer.request(3, [("x-huge", "h" * 300)], end=True)  # refers to the table entries made above
        peer.flush()
        headers, _, trailers = peer.until_ended(3)
        assert headers["x-echo-x-huge"] == "h" * 300
        assert trailers["grpc-status"] == "0"

    await in_thread(run)


async def test_connections_use_tcp_keepalive(server: H2Server) -> None:
    """Dead peer hosts are detected by the kernel, not by calls hanging on a pooled connection."""

    def run() -> Peer:
        peer = Peer(server.port)
        peer.request(1, end=True)
        peer.flush()
        peer.until_ended(1)
        return peer

    peer = await in_thread(run)
    try:
        (conn,) = server.connections
        assert conn.transport is not None
        sock = conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    finally:
        peer.sock.close()


async def test_broken_preface_gets_goaway_and_server_keeps_serving(server: H2Server) -> None:
    def run() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert b"not an HTTP/2 connection preface" in data  # GOAWAY debug data
        peer = Peer(server.port)
        peer.request(1, end=True)
        peer.flush()
        headers, _, trailers = peer.until_ended(1)
        assert headers[":status"] == "200"
        assert trailers["grpc-status"] == "0"

    await in_thread(run)
