"""Authorization between sidecars: a default-deny mesh from `grpcmesh ca` certificates and a policy file.

Three services: ``orders`` and ``billing`` behind real sidecars (mTLS inbound +
policy), ``web`` a real client sidecar; ``orders``/``billing`` also call each
other with their own certificates straight at the inbound listeners.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from grpcmesh.sdk import pki
from grpcmesh.sidecar.config import ConfigError, load_config
from tests.support.certs import Identity, ca_cli, cli_identity
from tests.support.load import Load
from tests.support.mesh import EchoProc, SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"

POLICY = """
default = "deny"

[services.orders]
default = "deny"
[[services.orders.rules]]
name = "web-all-echo"
sources = ["web"]
methods = ["/echo.v1.Echo/*"]

[services.billing]
default = "deny"
[[services.billing.rules]]
name = "orders-unary"
sources = ["spiffe://grpcmesh.local/service/ord*"]
methods = ["/echo.v1.Echo/Unary"]
"""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Mesh:
    group: ProcessGroup
    tmp: Path
    ca: Path
    policy: Path
    ids: dict[str, Identity]
    apps: dict[str, EchoProc]
    sidecars: dict[str, SidecarProc]

    async def direct(
        self, source: str, target: str, method: str = "Unary", ident: Identity | None = None
    ) -> bytes:
        """``source`` calls ``target``'s inbound with its own certificate (no client sidecar)."""
        ident = ident or self.ids[source]
        async with ident.channel(self.sidecars[target].inbound, target) as ch:
            reply: bytes = await ch.unary_unary(E + method)(source.encode(), timeout=10)
            return reply

    async def via_web(self, target: str, method: str = "Unary") -> bytes:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.sidecars['web'].outbound}") as ch:
            md = (("x-mesh-service", target),)
            reply: bytes = await ch.unary_unary(E + method)(b"web", metadata=md, timeout=10)
            return reply

    async def app_calls(self, target: str) -> dict[str, int]:
        """What the app behind ``target`` served (asked on its plaintext port, not through the policy)."""
        async with grpc.aio.insecure_channel(self.apps[target].target) as ch:
            calls: dict[str, int] = json.loads(await ch.unary_unary(E + "Stats")(b"", timeout=10))["calls"]
            return calls

    def metrics(self, target: str) -> str:
        return admin_get(self.sidecars[target].admin, "/metrics")[1]


def denied_count(metrics: str, source: str, method: str, mode: str = "enforce") -> float:
    pattern = (
        rf'grpcmesh_authz_denied_total\{{method="{re.escape(method)}",mode="{mode}",'
        rf'source="spiffe://grpcmesh.local/service/{source}"\}} ([0-9.]+)'
    )
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = Path(tmp_path_factory.mktemp("authz"))
    group = ProcessGroup(tmp)
    try:
        ca = tmp / "mesh-ca"
        ca_cli("init", "--dir", ca)
        ids = {name: cli_identity(ca, name, tmp / name) for name in ("web", "orders", "billing")}
        policy = tmp / "policy.toml"
        policy.write_text(POLICY)
        apps = {name: start_echo_proc(group, name) for name in ("orders", "billing")}
        sidecars = {
            name: start_sidecar(
                group,
                name,
                apps[name].target,
                *ids[name].flags(),
                "--require-tls",
                "--authz-policy",
                str(policy),
                wait=False,
            )
            for name in ("orders", "billing")
        }
        for sidecar in sidecars.values():
            sidecar.proc.wait_output("sidecar ready", timeout=30)
        endpoints = [f"--endpoints={n}=127.0.0.1:{sidecars[n].inbound}" for n in ("orders", "billing")]
        sidecars["web"] = start_sidecar(group, "web", "127.0.0.1:1", *ids["web"].flags(), *endpoints)
        yield Mesh(group, tmp, ca, policy, ids, apps, sidecars)
    finally:
        group.stop_all()


async def expect_denied(call: object, ruleset: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    assert f"[{ruleset}]" in (info.value.details() or "")


async def test_allow_deny_matrix_with_wildcard_exact_and_default_deny(mesh: Mesh) -> None:
    before = {t: await mesh.app_calls(t) for t in ("orders", "billing")}
    # allowed: a service wildcard (web -> orders, any Echo method) and an exact method with a source glob
    assert await mesh.via_web("orders") == b"web"
    assert json.loads(await mesh.via_web("orders", "Stats"))["name"] == "orders"
    assert await mesh.direct("orders", "billing") == b"orders"
    # denied by default: no rule names the source, or the method is not the exact one allowed
    await expect_denied(mesh.via_web("billing"), "services.billing")
    await expect_denied(mesh.direct("orders", "billing", "Create"), "services.billing")
    await expect_denied(mesh.direct("billing", "orders"), "services.orders")
    await expect_denied(mesh.direct("billing", "billing"), "services.billing")  # not even itself
    after = {t: await mesh.app_calls(t) for t in ("orders", "billing")}
    assert after["orders"].get("Unary", 0) - before["orders"].get("Unary", 0) == 1  # web's only
    assert after["billing"].get("Unary", 0) - before["billing"].get("Unary", 0) == 1  # orders' only
    assert after["billing"].get("Create", 0) == before["billing"].get("Create", 0)
    assert denied_count(mesh.metrics("billing"), "web", E + "Unary") >= 1
    assert denied_count(mesh.metrics("billing"), "orders", E + "Create") >= 1
    assert denied_count(mesh.metrics("orders"), "billing", E + "Unary") >= 1


async def test_health_checks_are_always_allowed(mesh: Mesh) -> None:
    # no rule lets billing call orders
    async with mesh.ids["billing"].channel(mesh.sidecars["orders"].inbound, "orders") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_expired_certificate_is_refused(mesh: Mesh) -> None:
    """Issued by the mesh CA for an allowed identity, but two days old with a one-hour life."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    files = pki.issue(mesh.ca, "web", mesh.tmp / "expired", hours=1, now=past)
    expired = Identity(files.cert, files.key, files.bundle)
    before = await mesh.app_calls("orders")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await mesh.direct("web", "orders", ident=expired)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails
    assert await mesh.app_calls("orders") == before


async def test_policy_reload_under_load_and_audit_mode(mesh: Mesh) -> None:
    """Edits land while web calls orders nonstop: no allowed call fails; audit lets a denial through."""

    async def reload_failed() -> bool:
        return 'grpcmesh_authz_policy_reloads_total{result="error"} 1.0' in mesh.metrics("orders")

    target = f"127.0.0.1:{mesh.sidecars['web'].outbound}"
    async with Load(target, E + "Unary", (("x-mesh-service", "orders"),)) as load:
        await load.progressed()
        # 1: orders audits instead of enforcing; billing -> orders now passes but is counted
        write_atomic(
            mesh.policy,
            POLICY.replace(
                '[services.orders]\ndefault = "deny"', '[services.orders]\ndefault = "deny"\nmode = "audit"'
            ),
        )

        async def billing_passes() -> bool:
            try:
                return await mesh.direct("billing", "orders") == b"billing"
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.PERMISSION_DENIED:
                    raise
                return False

        await wait_for_async(billing_passes, 30, what="the audit-mode policy to load")
        assert denied_count(mesh.metrics("orders"), "billing", E + "Unary", "audit") >= 1
        # 2: a broken edit keeps the last good policy (audit), 3: back to enforcing
        write_atomic(mesh.policy, POLICY + '\n[services.web]\ndefault = "maybe"\n')
        await wait_for_async(reload_failed, 30, what="the broken policy to be rejected")
        assert await mesh.direct("billing", "orders") == b"billing"  # still the audit policy
        write_atomic(mesh.policy, POLICY)

        async def billing_denied() -> bool:
            try:
                await mesh.direct("billing", "orders")
            except grpc.aio.AioRpcError as err:
                return err.code() == grpc.StatusCode.PERMISSION_DENIED
            return False

        await wait_for_async(billing_denied, 30, what="the enforcing policy to load again")
        await load.progressed()
    assert load.errors == []


def test_safe_defaults_refuse_policy_without_tls_and_require_tls(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    base = {"service": "orders", "app": "127.0.0.1:1"}
    with pytest.raises(ConfigError, match="authz_policy: needs tls"):
        load_config(overrides={**base, "authz_policy": str(policy)}, environ={})
    with pytest.raises(ConfigError, match=r"tls\.require"):
        load_config(overrides={**base, "tls": {"require": True}}, environ={})


def test_startup_warnings_a_plaintext_inbound_and_a_policy_for_another_trust_domain(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)  # bare names: spiffe://grpcmesh.local/service/...
    ca_cli("init", "--dir", tmp_path / "ca", "--trust-domain", "example.org")
    ident = cli_identity(tmp_path / "ca", "orders", tmp_path / "orders")
    try:
        plain = start_sidecar(group, "orders", "127.0.0.1:1", wait=False)
        foreign = start_sidecar(
            group, "orders", "127.0.0.1:1", *ident.flags(), "--authz-policy", str(policy), wait=False
        )
        plain.proc.wait_output("x-mesh-source is UNAUTHENTICATED", timeout=20)
        foreign.proc.wait_output(
            "does not match this sidecar's certificate (spiffe://example.org/", timeout=20
        )
    finally:
        group.stop_all()


def h2_exchange(mesh: Mesh, source: str, target: str) -> list[h2.events.Event]:
    """Over one raw HTTP/2 connection as ``source``: a client stream to a denied method that
    keeps sending (never half-closed), then an allowed unary call; every event seen."""
    ident = mesh.ids[source]
    ctx = ssl.create_default_context(cafile=str(ident.ca))
    ctx.load_cert_chain(ident.cert, ident.key)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", mesh.sidecars[target].inbound), timeout=10)
    events: list[h2.events.Event] = []
    with ctx.wrap_socket(raw, server_hostname=target) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        message = b"\x00" + (5).to_bytes(4, "big") + b"hello"

        def call(sid: int, method: str, end: bool) -> None:
            conn.send_headers(
                sid,
                [
                    (":method", "POST"),
                    (":scheme", "https"),
                    (":path", E + method),
                    (":authority", target),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ],
            )
            conn.send_data(sid, message, end_stream=end)

        def read() -> list[h2.events.Event]:
            data = sock.recv(65536)  # the socket's 10 s timeout bounds every wait
            assert data, "the sidecar closed the connection"
            return conn.receive_data(data)

        call(1, "ClientStream", end=False)
        sock.sendall(conn.data_to_send())
        while not any(isinstance(e, h2.events.StreamReset) and e.stream_id == 1 for e in events):
            events += read()
        call(3, "Unary", end=True)
        sock.sendall(conn.data_to_send())
        while not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 3 for e in events):
            events += read()
            sock.sendall(conn.data_to_send())
    return events


async def test_a_denied_stream_still_sending_is_cut_off_alone(mesh: Mesh) -> None:
    """Trailers-only PERMISSION_DENIED, then RST_STREAM(NO_ERROR) so the caller stops sending
    (RFC 9113 8.1); the same connection goes on serving the caller's allowed calls."""
    events = await asyncio.to_thread(h2_exchange, mesh, "orders", "billing")  # orders: billing's Unary only
    headers = {
        sid: dict(e.headers)
        for e in events
        if isinstance(e, h2.events.ResponseReceived)
        for sid in [e.stream_id]
    }
    assert headers[1][b"grpc-status"] == b"7"
    assert b"[services.billing]" in headers[1][b"grpc-message"]
    resets = [e.error_code for e in events if isinstance(e, h2.events.StreamReset)]
    assert resets == [h2.errors.ErrorCodes.NO_ERROR]
    trailers = [
        dict(e.headers) for e in events if isinstance(e, h2.events.TrailersReceived) and e.stream_id == 3
    ]
    assert trailers[0][b"grpc-status"] == b"0"
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == 3)
    assert data.endswith(b"hello")


async def test_a_denied_client_stream_from_grpc_python_sees_permission_denied(mesh: Mesh) -> None:
    """A real gRPC client still writing its request stream when the denial arrives gets the
    denial's status (not an INTERNAL about its own failed write), each time."""

    async def requests() -> AsyncIterator[bytes]:
        for i in range(200):
            yield b"x" * (60_000 if i % 2 else 10)  # large ones fill the window, small ones race the answer
            await asyncio.sleep(0)

    ident = mesh.ids["orders"]
    async with ident.channel(mesh.sidecars["billing"].inbound, "billing") as ch:
        for _ in range(20):
            call = ch.stream_unary(E + "ClientStream")(requests(), timeout=10)
            await expect_denied(call, "services.billing")
