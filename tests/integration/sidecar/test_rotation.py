"""Certificate rotation without downtime: leaves, then the root (a two-root bundle), under load.

``web``'s sidecar calls ``orders``' sidecar (mTLS, default-deny policy that
allows web) nonstop from 4 workers while `grpcmesh ca` reissues certificates
into the files the sidecars watch. Not one call may fail.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from grpcmesh.sdk import pki
from tests.support.certs import Identity, ca_cli, cli_identity, presented_serial, serial_of
from tests.support.load import Load
from tests.support.mesh import SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"
POLICY = """
[services.orders]
default = "deny"
[[services.orders.rules]]
sources = ["web"]
methods = ["/echo.v1.Echo/Unary", "/echo.v1.Echo/Bidi"]
"""


def reloads(sidecar: SidecarProc) -> float:
    found = re.search(
        r'grpcmesh_tls_reloads_total\{result="ok"\} ([0-9.]+)', admin_get(sidecar.admin, "/metrics")[1]
    )
    return float(found.group(1)) if found else 0.0


def serving(sidecar: SidecarProc, serial: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return f'grpcmesh_tls_cert_info{{serial="{serial}"}} 1.0' in admin_get(sidecar.admin, "/metrics")[1]

    return check


def copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


async def test_leaf_then_root_rotation_under_load_fails_no_call(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path)
    ca = tmp_path / "mesh-ca"
    ca_cli("init", "--dir", ca)
    web_dir, orders_dir = tmp_path / "web", tmp_path / "orders"
    web = cli_identity(ca, "web", web_dir)
    # orders starts on a leaf in the last third of its life: the sidecar warns
    aging = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=20)
    pki.issue(ca, "orders", orders_dir, hours=24, now=aging)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    load: Load | None = None
    channel: grpc.aio.Channel | None = None
    try:
        app = start_echo_proc(group, "orders")
        orders_flags = [
            "--tls-cert",
            str(orders_dir / "orders.pem"),
            "--tls-key",
            str(orders_dir / "orders.key"),
        ]
        orders = start_sidecar(
            group,
            "orders",
            app.target,
            *orders_flags,
            "--tls-ca",
            str(orders_dir / "bundle.pem"),
            "--authz-policy",
            str(policy),
        )
        orders.proc.wait_output("certificate expires in", timeout=10)
        client = start_sidecar(
            group, "web", "127.0.0.1:1", *web.flags(), f"--endpoints=orders=127.0.0.1:{orders.inbound}"
        )

        async def issue_both() -> None:
            for name, where, sidecar in (("web", web_dir, client), ("orders", orders_dir, orders)):
                cli_identity(ca, name, where)
                await wait_for_async(
                    serving(sidecar, serial_of(where / f"{name}.pem")), 30, what=f"{name} reload"
                )

        load = Load(f"127.0.0.1:{client.outbound}", E + "Unary", (("x-mesh-service", "orders"),))
        await load.__aenter__()
        await load.progressed()
        # a call that stays open through every rotation below, on the connections of the first certificates
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{client.outbound}")
        long_call = channel.stream_stream(E + "Bidi")(metadata=(("x-mesh-service", "orders"),), timeout=120)
        await long_call.write(b"before")
        assert await long_call.read() == b"before"

        # 1. leaf rotation: new certificates from the same CA
        old_orders = serial_of(orders_dir / "orders.pem")
        await issue_both()
        assert (
            await presented_serial(orders.inbound, web, "orders")
            == serial_of(orders_dir / "orders.pem")
            != old_orders
        )
        await load.progressed()

        # 2a. root rotation starts: every sidecar first trusts both roots
        ca_cli("init", "--dir", ca, "--rotate")
        retired = next((ca / "retired").iterdir())
        for where, sidecar in ((web_dir, client), (orders_dir, orders)):
            before = reloads(sidecar)
            copy_atomic(ca / "bundle.pem", where / "bundle.pem")

            async def reloaded(sidecar: SidecarProc = sidecar, before: float = before) -> bool:
                return reloads(sidecar) > before

            await wait_for_async(reloaded, 30, what="the two-root bundle to load")
        await load.progressed()
        # 2b. leaves from the new root; 2c. the old root leaves every bundle
        await issue_both()
        await load.progressed()
        ca_cli("finish-rotation", "--dir", ca)
        await issue_both()
        await load.progressed()
        await load.stop()
        assert load.errors == []
        await long_call.write(b"after")  # existing calls finish on their connections
        assert await long_call.read() == b"after"
        await long_call.done_writing()
        assert await long_call.code() == grpc.StatusCode.OK
        leaf = x509.load_pem_x509_certificate((orders_dir / "orders.pem").read_bytes())
        expiry = re.search(
            r"grpcmesh_tls_cert_expiry_timestamp_seconds ([0-9.e+]+)", admin_get(orders.admin, "/metrics")[1]
        )
        assert expiry is not None
        assert float(expiry.group(1)) == leaf.not_valid_after_utc.timestamp()

        # the old root is no longer trusted: a fresh leaf from the retired CA is refused
        files = pki.issue(retired, "web", tmp_path / "old-root")
        old = Identity(files.cert, files.key, files.bundle)
        # the client trusts the new root, so only the server side can refuse
        async with old.channel(orders.inbound, "orders", roots=ca / "bundle.pem") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await ch.unary_unary(E + "Unary")(b"x", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        if channel is not None:
            await channel.close()
        if load is not None:
            await load.stop()
        group.stop_all()
