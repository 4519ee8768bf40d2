"""The same policy guarding an SDK Server that serves mutual TLS itself (no sidecar)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from grpcmesh.sdk import Server
from grpcmesh.sdk.interceptors.authz import AuthzInterceptor, mtls_server_credentials
from tests.support.certs import Identity, ca_cli, cli_identity, presented_serial, serial_of
from tests.support.echo import SERVICE, Echo

E = "/echo.v1.Echo/"
POLICY = """
[services.orders]
default = "deny"
[[services.orders.rules]]
name = "web-unary"
sources = ["web"]
methods = ["/echo.v1.Echo/Unary", "/echo.v1.Echo/ServerStream"]
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Server, AuthzInterceptor, dict[str, Identity]]]:
    ca = tmp_path / "mesh-ca"
    ca_cli("init", "--dir", ca)
    ids = {name: cli_identity(ca, name, tmp_path / name) for name in ("orders", "web", "billing")}
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    authz = AuthzInterceptor.from_file(policy, "orders")
    echo = Echo()
    srv = Server(
        [(echo, lambda impl, s: s.add_generic_rpc_handlers((impl.handler(),)), SERVICE)],
        credentials=mtls_server_credentials(ids["orders"].cert, ids["orders"].key, ids["orders"].ca),
        interceptors=[authz],
    )
    await srv.start()
    try:
        yield srv, authz, ids
    finally:
        await srv.stop(0)


async def test_sdk_server_enforces_the_policy_on_verified_identities(
    server: tuple[Server, AuthzInterceptor, dict[str, Identity]],
) -> None:
    srv, authz, ids = server
    async with ids["web"].channel(srv.port, "orders") as ch:
        assert await ch.unary_unary(E + "Unary")(b"hi", timeout=10) == b"hi"
        replies = [r async for r in ch.unary_stream(E + "ServerStream")(b"ab", timeout=10)]
        assert replies
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Stats")(b"", timeout=10)  # exact rule: Stats is not listed
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with ids["billing"].channel(srv.port, "orders") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Unary")(b"hi", timeout=10)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "[services.orders]" in (info.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [r async for r in ch.unary_stream(E + "ServerStream")(b"ab", timeout=10)]
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # always allowed
    billing = "spiffe://grpcmesh.local/service/billing"
    assert authz.denied[billing, E + "Unary", "enforce"] == 1
    assert authz.denied[billing, E + "ServerStream", "enforce"] == 1
    assert authz.denied["spiffe://grpcmesh.local/service/web", E + "Stats", "enforce"] == 1


async def test_sdk_server_picks_up_a_reissued_certificate_on_new_connections(
    server: tuple[Server, AuthzInterceptor, dict[str, Identity]],
) -> None:
    srv, _, ids = server
    web = ids["web"]

    before = await presented_serial(srv.port, web, "orders")
    orders = ids["orders"]
    reissued = cli_identity(orders.cert.parent.parent / "mesh-ca", "orders", orders.cert.parent)
    assert await presented_serial(srv.port, web, "orders") == serial_of(reissued.cert) != before
    async with web.channel(srv.port, "orders") as ch:
        assert await ch.unary_unary(E + "Unary")(b"after", timeout=10) == b"after"
