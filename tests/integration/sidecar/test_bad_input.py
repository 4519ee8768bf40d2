"""Bad input gets a correct gRPC status and the sidecar keeps serving; plus the admin endpoint."""

from __future__ import annotations

import json
import socket

import grpc
import pytest

from tests.integration.sidecar.conftest import Pair
from tests.support.mesh import admin_get
from tests.support.procs import wait_for_async

E = "/echo.v1.Echo/"


async def still_serving(pair: Pair) -> None:
    async with grpc.aio.insecure_channel(pair.outbound) as ch:
        assert await ch.unary_unary(E + "Unary")(b"ok", timeout=10) == b"ok"


async def expect(pair: Pair, method: str, payload: bytes, code: grpc.StatusCode, md: tuple = ()) -> str:
    async with grpc.aio.insecure_channel(
        pair.outbound, options=[("grpc.max_send_message_length", 8 << 20)]
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(method)(payload, metadata=md, timeout=10)
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,
        b"\x00\x00\x04\x01\x00\x00\x00\x00\x01garbage-frame-body" * 10,
    ],
)
async def test_garbage_frames_are_dropped(pair: Pair, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", pair.client.outbound), timeout=5) as s:
        s.sendall(garbage)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    await still_serving(pair)


async def test_oversized_message(pair: Pair) -> None:
    details = await expect(pair, E + "Unary", b"x" * (2 << 20), grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "larger than max" in details or "message" in details.lower()
    await still_serving(pair)


async def test_unknown_method(pair: Pair) -> None:
    await expect(pair, E + "NoSuchMethod", b"x", grpc.StatusCode.UNIMPLEMENTED)
    await still_serving(pair)


async def test_no_route_names_what_was_tried(pair: Pair) -> None:
    details = await expect(pair, "/nope.v1.Nothing/Do", b"x", grpc.StatusCode.UNAVAILABLE)
    assert "x-mesh-service" in details
    assert "nope.v1.Nothing" in details
    assert "grpc_services" in details
    await still_serving(pair)


async def test_unknown_service_by_header(pair: Pair) -> None:
    details = await expect(
        pair, E + "Unary", b"x", grpc.StatusCode.UNAVAILABLE, (("x-mesh-service", "ghost"),)
    )
    assert "ghost" in details
    await still_serving(pair)


async def test_undecodable_request_reaches_app_error(pair: Pair) -> None:
    """The proxy never decodes; the app's own decode error (grpc-python: UNKNOWN) comes back unchanged."""
    md = (("x-mesh-service", "echo"),)
    details = await expect(pair, "/grpc.health.v1.Health/Check", b"\xff\xff\xff", grpc.StatusCode.UNKNOWN, md)
    assert "Wire format was corrupt" in details
    await still_serving(pair)


async def test_admin_endpoints(pair: Pair) -> None:
    await still_serving(pair)
    port = pair.client.admin
    assert admin_get(port, "/live")[0] == 200
    assert admin_get(port, "/ready")[0] == 200
    status, metrics = admin_get(port, "/metrics")
    assert status == 200
    assert (
        'grpcmesh_requests_total{code="OK",direction="outbound",method="/echo.v1.Echo/Unary",service="echo"}'
        in metrics
    )
    assert "grpcmesh_request_duration_seconds_bucket" in metrics
    assert 'grpcmesh_endpoints{service="echo"} 1.0' in metrics
    assert "grpcmesh_breaker_state{" in metrics
    assert "grpcmesh_retries_total" in metrics
    clusters = json.loads(admin_get(port, "/clusters")[1])
    (echo,) = [c for c in clusters["outbound"] if c["service"] == "echo"]
    assert echo["endpoints"][0]["target"] == f"127.0.0.1:{pair.server.inbound}"
    assert echo["endpoints"][0]["breaker"]["state"] == "CLOSED"
    assert "ewma_ms" in echo["endpoints"][0]
    status, config = admin_get(port, "/config")
    assert status == 200
    assert "s3cret-token" not in config
    assert json.loads(config)["consul_token"] == "***"
    assert admin_get(port, "/nope")[0] == 404
    # the server-side sidecar learned its app's services and which methods are idempotent ...
    inbound = json.loads(admin_get(pair.server.admin, "/clusters")[1])["inbound"]
    assert inbound["grpc_services"] == ["echo.v1.Echo"]
    assert inbound["methods"]["/echo.v1.Echo/Bidi"] == "not idempotent"
    assert inbound["methods"]["/echo.v1.Echo/Unary"] == "idempotent"
    # ... and the client side learned them through the pair, so idempotent calls may be retried
    await wait_for_async(lambda: _learned(pair), 10, what="outbound to learn idempotent methods")


async def _learned(pair: Pair) -> bool:
    methods = json.loads(admin_get(pair.client.admin, "/clusters")[1])["methods"]
    return bool(
        methods.get("/echo.v1.Echo/Unary") == "idempotent"
        and methods.get("/echo.v1.Echo/ServerStream") == "idempotent"
        and methods.get("/echo.v1.Echo/Create") == "not idempotent"
    )
