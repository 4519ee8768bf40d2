"""The relay over fake streams: phases, retries through the attempt sequence, markers, limits.

Fakes stand in for the HTTP/2 layer only (streams record what the relay sends
them); the cluster, the attempt sequence and the classification are real. A
compiled relay accepts only real streams, so these run on the pure-Python
modules (`make test-pure`, part of `make test`); the integration tests cover the
compiled relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from grpcmesh.sdk.breaker import BreakerConfig
from grpcmesh.sdk.cluster import Cluster, ClusterConfig
from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sdk.failures import LOCAL, NOT_REACHED, PUSHBACK
from grpcmesh.sdk.retry import RetryConfig
from grpcmesh.sidecar import COMPILED
from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.hop import CallRecord
from grpcmesh.sidecar.proxy import Phase, Relay

pytestmark = pytest.mark.skipif(COMPILED, reason="fakes need the pure-Python relay: make test-pure")

Sent = list[tuple[str, Any, bool]]


class FakeConn:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.closed = False
        self.opened: list[FakeStream] = []

    def open(self, owner: Any, headers: list[tuple[str, str]], end_stream: bool) -> FakeStream:
        stream = FakeStream(self, owner)
        stream.sent.append(("headers", headers, end_stream))
        stream.local_closed = end_stream
        self.opened.append(stream)
        return stream


class FakeStream:
    def __init__(self, conn: FakeConn, owner: Any = None) -> None:
        self.conn = conn
        self.owner = owner
        self.sent: Sent = []
        self.local_closed = False
        self.remote_closed = False
        self.resets: list[int] = []
        self.credited = 0

    def send_headers(self, headers: list[tuple[str, str]], end_stream: bool = False) -> None:
        self.sent.append(("headers", headers, end_stream))
        self.local_closed = self.local_closed or end_stream

    def send_data(self, data: bytes, end_stream: bool = False, credit: Any = None) -> None:
        self.sent.append(("data", data, end_stream))
        if credit is not None:
            credit.consumed(len(data))

    def consumed(self, n: int) -> None:
        self.credited += n

    def reset(self, code: int) -> None:
        self.resets.append(code)
        self.local_closed = self.remote_closed = True

    def trailers(self) -> dict[str, str]:
        kind, headers, end = self.sent[-1]
        assert kind == "headers"
        assert end
        return dict(headers)


class FakePool:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn

    def ready(self) -> FakeConn:
        return self.conn

    async def connect(self) -> FakeConn:  # pragma: no cover - ready() always answers
        return self.conn


OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]
MESSAGE = b"\x00\x00\x00\x00\x02hi"


def trailers_only(code: int, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [*OK_HEADERS, ("grpc-status", str(code)), *extra]


class Harness:
    def __init__(self, cluster: Cluster, loop: asyncio.AbstractEventLoop, max_message: int = 0) -> None:
        self.cluster = cluster
        self.up = FakeConn(loop)
        self.down = FakeStream(FakeConn(loop))
        self.pool = FakePool(self.up)
        self.done: list[Relay] = []
        self.relay = Relay(
            self.down,  # type: ignore[arg-type]
            True,
            deadline=None,
            max_message_bytes=max_message,
            replay_limit=1 << 20,
            on_done=self.done.append,
            call=CallRecord("outbound"),
        )

    def start(self, *, idempotent: bool, method: str = "/echo.v1.Echo/Unary") -> None:
        headers = [(":method", "POST"), (":path", method)]
        self.relay.start(
            self.cluster, headers, lambda _s, _e: self.pool, idempotent=idempotent, method=method
        )  # type: ignore[arg-type,return-value]

    def upstream(self, i: int = -1) -> FakeStream:
        return self.up.opened[i]

    async def attempts(self, n: int) -> None:
        for _ in range(200):
            if len(self.up.opened) >= n:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"expected {n} attempts, saw {len(self.up.opened)}")


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    eps = [Endpoint("127.0.0.1", 1 + i, id=f"e{i}") for i in range(3)]
    config = ClusterConfig(
        retry=RetryConfig(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0),
        breaker=BreakerConfig(consecutive_failures=2, cool_down_s=60.0),
    )
    c = Cluster("echo", MemoryResolver({"echo": eps}), config)
    await c.start()
    yield c
    await c.close()


async def test_a_call_flows_through_and_its_record_is_complete(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=True)
    up = h.upstream()
    assert h.relay.phase is Phase.ATTEMPT
    h.relay.on_headers(up, OK_HEADERS, False)  # type: ignore[arg-type]
    assert h.down.sent == []  # held until the first message commits the attempt
    h.relay.on_data(up, MESSAGE, False)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.COMMITTED
    h.relay.on_headers(up, [("grpc-status", "0")], True)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.DONE
    assert [k for k, _, _ in h.down.sent] == ["headers", "data", "headers"]
    assert h.done == [h.relay]
    assert h.relay.call.code is grpc.StatusCode.OK
    assert h.relay.call.attempts == 1
    assert all(s.load.in_flight == 0 for s in cluster.endpoints)


async def test_app_answers_are_relayed_not_retried_and_never_count(cluster: Cluster) -> None:
    for _ in range(10):
        h = Harness(cluster, asyncio.get_running_loop())
        h.start(idempotent=True)
        h.relay.on_headers(h.upstream(), trailers_only(2, ("grpc-message", "boom")), True)  # type: ignore[arg-type]
        assert len(h.up.opened) == 1
        assert h.down.trailers()["grpc-status"] == "2"
    assert cluster.snapshot()["open_breakers"] == 0
    assert all(s.breaker.snapshot()["consecutive_failures"] == 0 for s in cluster.endpoints)


async def test_unavailable_is_retried_elsewhere_for_idempotent_methods(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=True)
    first = h.upstream()
    h.relay.on_headers(first, trailers_only(14), True)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.BACKOFF
    await h.attempts(2)
    second = h.upstream()
    assert h.relay.call.endpoint is not None
    h.relay.on_headers(second, OK_HEADERS, False)  # type: ignore[arg-type]
    h.relay.on_data(second, MESSAGE, False)  # type: ignore[arg-type]
    h.relay.on_headers(second, [("grpc-status", "0")], True)  # type: ignore[arg-type]
    assert h.relay.call.attempts == 2
    assert h.down.trailers() == {"grpc-status": "0"}


async def test_non_idempotent_is_retried_only_when_not_reached(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=False)
    h.relay.on_headers(h.upstream(), trailers_only(14), True)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.DONE
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=False)
    h.relay.on_reset(h.upstream(), ErrorCode.REFUSED_STREAM)  # type: ignore[arg-type]
    await h.attempts(2)
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=False)
    h.relay.on_headers(h.upstream(), trailers_only(14, (NOT_REACHED, "1")), True)  # type: ignore[arg-type]
    await h.attempts(2)


async def test_negative_pushback_stops_retrying(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=True)
    h.relay.on_headers(h.upstream(), trailers_only(14, (PUSHBACK, "-1")), True)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.DONE
    assert h.down.trailers()[PUSHBACK] == "-1"  # relayed unchanged


async def test_a_configured_message_cap_answers_locally(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop(), max_message=1024)
    h.relay._ended = False
    h.start(idempotent=True)
    h.relay.on_data(h.down, b"\x00" + (4096).to_bytes(4, "big") + b"x" * 100, False)  # type: ignore[arg-type]
    trailers = h.down.trailers()
    assert trailers["grpc-status"] == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
    assert "max_message_bytes" in trailers["grpc-message"]
    assert trailers[LOCAL] == "1"
    assert h.upstream().resets == [ErrorCode.CANCEL]
    assert cluster.snapshot()["open_breakers"] == 0


async def test_without_a_cap_large_messages_stream_through(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.relay._ended = False
    h.start(idempotent=True)
    h.relay.on_data(h.down, b"\x00" + (64 << 20).to_bytes(4, "big") + b"x" * 100, False)  # type: ignore[arg-type]
    assert h.relay.phase is Phase.ATTEMPT
    assert h.upstream().sent[-1][0] == "data"


async def test_caller_cancel_resets_upstream_and_is_neutral(cluster: Cluster) -> None:
    h = Harness(cluster, asyncio.get_running_loop())
    h.start(idempotent=True)
    h.relay.on_reset(h.down, ErrorCode.CANCEL)  # type: ignore[arg-type]
    assert h.upstream().resets == [ErrorCode.CANCEL]
    assert h.relay.call.code is grpc.StatusCode.CANCELLED
    assert all(s.load.in_flight == 0 for s in cluster.endpoints)
    assert all(s.breaker.snapshot()["consecutive_failures"] == 0 for s in cluster.endpoints)
