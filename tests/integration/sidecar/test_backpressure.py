"""A slow reader behind the sidecar holds the sender back instead of filling the sidecar's memory.

The upstream grants 2 GiB HTTP/2 windows and then stops reading its socket, so flow
control alone would let the sidecar write (and credit the caller for) everything it is
sent. The sidecar must stop at its transport's high-water mark, keep the rest within the
windows it granted the caller, and deliver every byte once the upstream reads again.
Both peers are the independent ``h2`` library on real loopback sockets.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sidecar.app import Sidecar
from tests.support.inprocess import sidecar_config
from tests.support.procs import wait_for_async

MIB = 1 << 20
TARGET = 64 * MIB  # what the caller tries to push while the upstream reads nothing
HELD_BOUND = 24 * MIB  # kernel buffers (≤ 4 MiB each way) + 1 MiB high-water + 1 MiB stream window, with room
MESSAGE = 64 * 1024
BIG_WINDOW = 2**31 - 1
PUSH = "/up.v1.Up/Push"
GRPC = [("content-type", "application/grpc")]


def _frame() -> bytes:
    payload = bytes(range(256)) * (MESSAGE // 256)
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class SlowUpstream:
    """An h2 server whose ``Push`` stream is read no further than its headers until released.

    Every connection is served (the sidecar also dials in for reflection, which gets
    UNIMPLEMENTED), so the data-plane connection is never left unaccepted in the backlog.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.received = 0

    def start(self) -> None:
        threading.Thread(target=self._accept, name="slow-upstream", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: BIG_WINDOW})
        conn.increment_flow_control_window(BIG_WINDOW - 65535)
        push = 0
        try:
            with sock:
                sock.sendall(conn.data_to_send())
                while not self.done.is_set():
                    data = sock.recv(1 << 20)
                    if not data:
                        return
                    for ev in conn.receive_data(data):
                        if isinstance(ev, h2.events.RequestReceived):
                            if dict(ev.headers)[":path"] == PUSH:
                                push = ev.stream_id
                            else:
                                conn.send_headers(
                                    ev.stream_id, [(":status", "200"), *GRPC, ("grpc-status", "12")], True
                                )
                        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == push:
                            self.received += len(ev.data)
                        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == push:
                            conn.send_headers(push, [(":status", "200"), *GRPC])
                            conn.send_headers(push, [("grpc-status", "0")], end_stream=True)
                            self.done.set()
                    sock.sendall(conn.data_to_send())
                    if push and not self.release.is_set():
                        assert self.release.wait(30), "never released"
        except BaseException as err:  # only the push connection's failures matter
            if push:
                self.error = err
                self.done.set()
            raise


class Caller:
    """An h2 client that sends as fast as the sidecar's windows allow; notes where it is held."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.held = threading.Event()
        self.go_on = threading.Event()
        self.held_at: int | None = None
        self.trailers: dict[str, str] = {}

    def run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        conn.initiate_connection()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", PUSH),
            (":authority", "up"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("x-mesh-service", "up"),
        ]
        conn.send_headers(1, headers)
        sock.sendall(conn.data_to_send())
        body = memoryview(_frame() * (TARGET // MESSAGE))
        sent = 0
        while sent < len(body):
            room = min(conn.local_flow_control_window(1), conn.max_outbound_frame_size, len(body) - sent)
            if room > 0:
                conn.send_data(1, body[sent : sent + room].tobytes())
                sent += room
                sock.sendall(conn.data_to_send())
                continue
            if self.held_at is None:
                sock.settimeout(2.0)  # no window for this long while the sidecar keeps the rest: held
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                self.held_at = sent
                self.held.set()
                assert self.go_on.wait(30), "never told to go on"
                sock.settimeout(30)
                continue
            assert data, "sidecar closed the connection"
            self._read(conn, data)
            sock.sendall(conn.data_to_send())
        self.held.set()  # also when everything went through without being held (held_at stays None)
        conn.end_stream(1)
        sock.sendall(conn.data_to_send())
        sock.settimeout(30)
        while not self.trailers:
            data = sock.recv(1 << 16)
            assert data, "sidecar closed the connection"
            self._read(conn, data)
            sock.sendall(conn.data_to_send())
        sock.close()

    def _read(self, conn: h2.connection.H2Connection, data: bytes) -> None:
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.TrailersReceived):
                self.trailers = dict(ev.headers)


async def test_a_slow_upstream_holds_the_caller_back_and_loses_nothing() -> None:
    upstream = SlowUpstream()
    upstream.start()
    cfg = sidecar_config()
    sidecar = Sidecar(cfg, resolver=MemoryResolver({"up": [Endpoint("127.0.0.1", upstream.port)]}))
    await sidecar.start()
    caller = Caller(int(cfg.outbound.rsplit(":", 1)[1]))
    calling = asyncio.ensure_future(asyncio.to_thread(caller.run))
    try:
        assert await asyncio.to_thread(caller.held.wait, 60), "the caller never got going"
        assert caller.held_at is not None, "the caller was never held back: the sidecar took all it was sent"
        assert caller.held_at < HELD_BOUND, f"sidecar took {caller.held_at / MIB:.1f} MiB before holding back"
        upstream_h2: dict[str, Any] = sidecar.clusters_snapshot()["http2"]["upstream"]
        pool = next(iter(upstream_h2.values()))
        assert pool["paused"] == 1  # the upstream connection is over its high-water mark
        assert 0 < pool["queued_bytes"] <= 1 * MIB  # the rest waits within the caller's stream window
        upstream.release.set()
        caller.go_on.set()
        await asyncio.wait_for(calling, 60)
        assert await asyncio.to_thread(upstream.done.wait, 30)
        assert upstream.error is None
        assert caller.trailers.get("grpc-status") == "0"
        assert upstream.received == TARGET // MESSAGE * (MESSAGE + 5)  # every byte, once
        await wait_for_async(lambda: _idle(sidecar), 10, what="the upstream connection to drain its queue")
    finally:
        upstream.release.set()
        caller.go_on.set()
        await sidecar.drain()
        upstream.listener.close()
        await asyncio.wait({calling}, timeout=30)


async def _idle(sidecar: Sidecar) -> bool:
    pools = sidecar.clusters_snapshot()["http2"]["upstream"].values()
    return all(p["paused"] == 0 and p["queued_bytes"] == 0 for p in pools)
