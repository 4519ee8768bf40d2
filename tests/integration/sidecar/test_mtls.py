"""Mutual TLS between sidecars: identity by certificate, refused without one, names checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from grpcmesh.sidecar.config import ConfigError, load_config
from tests.support.certs import MeshCA
from tests.support.mesh import SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"
TO_ECHO = (("x-mesh-service", "echo"),)


@dataclass
class Mesh:
    group: ProcessGroup
    ca: MeshCA
    server: SidecarProc  # the echo app's sidecar, inbound on mTLS
    tmp: Path

    def sidecar(self, name: str, *tls: str, upstream: str = "echo") -> SidecarProc:
        endpoints = f"{upstream}=127.0.0.1:{self.server.inbound}"
        return start_sidecar(self.group, name, "127.0.0.1:1", "--endpoints", endpoints, *tls)

    async def direct(self, method: str, identity: str, md: tuple[tuple[str, str], ...] = ()) -> bytes:
        """Straight to the TLS inbound with a mesh certificate for ``identity`` (no client sidecar)."""
        cert = self.ca.issue(identity)
        creds = grpc.ssl_channel_credentials(
            root_certificates=cert.ca.read_bytes(),
            private_key=cert.key.read_bytes(),
            certificate_chain=cert.cert.read_bytes(),
        )
        options = [("grpc.ssl_target_name_override", "echo")]
        async with grpc.aio.secure_channel(f"127.0.0.1:{self.server.inbound}", creds, options=options) as ch:
            reply: bytes = await ch.unary_unary(E + method)(b"direct", metadata=md, timeout=10)
            return reply

    async def app_calls(self) -> int:
        """Unary calls the echo app has served."""
        return int(json.loads(await self.direct("Stats", "tester"))["calls"].get("Unary", 0))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = Path(tmp_path_factory.mktemp("mtls"))
    group = ProcessGroup(tmp)
    try:
        ca = MeshCA(tmp)
        echo = start_echo_proc(group, "tls")
        server = start_sidecar(group, "echo", echo.target, *ca.issue("echo").flags())
        yield Mesh(group, ca, server, tmp)
    finally:
        group.stop_all()


async def call(sidecar: SidecarProc, method: str = "Unary", timeout: float = 10) -> bytes:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.outbound}") as ch:
        reply: bytes = await ch.unary_unary(E + method)(b"over mtls", metadata=TO_ECHO, timeout=timeout)
        return reply


async def test_calls_between_sidecars_run_over_mtls_with_the_certified_source(mesh: Mesh) -> None:
    client = mesh.sidecar("web", *mesh.ca.issue("web").flags())
    assert await call(client) == b"over mtls"
    stats = json.loads(await call(client, "Stats"))
    assert stats["metadata"]["x-mesh-source"] == "web"  # of the Unary call above


async def test_method_idempotency_is_learned_over_mtls(mesh: Mesh) -> None:
    """Reflection goes through the same mutual TLS, so idempotent methods stay retryable."""
    client = mesh.sidecar("shop", *mesh.ca.issue("shop").flags())
    assert await call(client) == b"over mtls"

    async def learned() -> bool:
        methods = json.loads(admin_get(client.admin, "/clusters")[1])["methods"]
        return bool(methods.get("/echo.v1.Echo/Unary") == "idempotent")

    await wait_for_async(learned, 10, what="the outbound to learn Echo's idempotency over mTLS")


async def test_the_source_is_the_certificate_not_the_header(mesh: Mesh) -> None:
    """A mesh client claiming another identity in x-mesh-source is recorded as who it proved to be."""
    assert await mesh.direct("Unary", "billing", (("x-mesh-source", "admin"),)) == b"direct"
    stats = json.loads(await mesh.direct("Stats", "billing"))
    assert stats["metadata"]["x-mesh-source"] == "billing"


async def test_a_client_without_a_mesh_certificate_is_refused(mesh: Mesh) -> None:
    before = await mesh.app_calls()
    rogue = mesh.sidecar("rogue", *MeshCA(mesh.tmp, "other-ca").issue("rogue").flags())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(rogue)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails both ways
    for i in range(4):  # fresh sidecars: a first dial used to race the TLS server's reset and hang
        plain = mesh.sidecar(f"plain-{i}")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(plain, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert await mesh.app_calls() == before  # nothing reached the app


async def test_an_endpoint_certified_for_another_service_is_refused(mesh: Mesh) -> None:
    """Discovery says 'payments' lives there, but the certificate there says 'echo'."""
    before = await mesh.app_calls()
    shop = mesh.sidecar("shop", *mesh.ca.issue("shop").flags(), upstream="payments")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{shop.outbound}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(E + "Unary")(b"x", metadata=(("x-mesh-service", "payments"),), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "payments" in (info.value.details() or "")
    assert await mesh.app_calls() == before


def test_partial_tls_config_names_the_missing_key(tmp_path: Path) -> None:
    ident = MeshCA(tmp_path).issue("echo")
    base = {"service": "echo", "app": "127.0.0.1:1"}
    with pytest.raises(ConfigError, match=r"tls\.key_file"):
        load_config(overrides={**base, "tls": {"cert_file": str(ident.cert)}}, environ={})
    missing = {"cert_file": str(ident.cert), "key_file": str(tmp_path / "nope"), "ca_file": str(ident.ca)}
    with pytest.raises(ConfigError, match="no such file"):
        load_config(overrides={**base, "tls": missing}, environ={})
