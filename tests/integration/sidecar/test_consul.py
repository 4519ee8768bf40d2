"""With a real Consul agent: sidecars register, and a call routes by proto service name alone.

Uses the ``consul`` fixture (tests/conftest.py): a real ``consul agent -dev``.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from tests.support.certs import MeshCA
from tests.support.consul import ConsulAgent
from tests.support.mesh import start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for

E = "/echo.v1.Echo/"


def _catalog(url: str, service: str) -> list[dict[str, object]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/v1/health/service/{service}?passing=1", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("mtls", [False, True], ids=["plaintext", "mtls"])
async def test_zero_config_route_via_consul_and_deregister_on_drain(
    procs: ProcessGroup, consul: ConsulAgent, tmp_path: Path, mtls: bool
) -> None:
    """With mTLS on, Consul (no client certificate) checks the app's health directly."""
    url = consul.http_url
    ca = MeshCA(tmp_path) if mtls else None
    echo = start_echo_proc(procs, "c")
    server = start_sidecar(
        procs, "echo", echo.target, "--consul", url, *(ca.issue("echo").flags() if ca else ())
    )
    client = start_sidecar(
        procs, "web", "127.0.0.1:1", "--consul", url, *(ca.issue("web").flags() if ca else ())
    )
    wait_for(lambda: _catalog(url, "echo"), 30, what="echo registered and passing its gRPC check")
    (entry,) = _catalog(url, "echo")
    service = entry["Service"]
    assert isinstance(service, dict)
    assert service["Port"] == server.inbound  # callers reach the app through its sidecar
    assert "echo.v1.Echo" in service["Meta"]["grpc_services"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{client.outbound}") as ch:
        # no x-mesh-service, no [routes]: /echo.v1.Echo/... finds service "echo" from the meta
        assert await ch.unary_unary(E + "Unary")(b"via consul", timeout=10) == b"via consul"
    server.proc.stop()  # SIGTERM: deregisters while draining
    wait_for(lambda: not _catalog(url, "echo"), 15, what="echo deregistered")
