"""Real sidecars export spans to the embedded store and to Zipkin; users read them back.

A caller → client sidecar → server sidecar → echo app. Both sidecars write one
SQLite file (one via --trace-endpoint, one via GRPCMESH_TRACE_DB); the test
then uses ``grpcmesh traces`` and the admin pages exactly as a user would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from grpcmesh.sdk.spanstore import find_trace, get_trace
from tests.support.mesh import ROOT, SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for

E = "/echo.v1.Echo/"
FAST_BATCH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # the batch processor flushes every 100 ms


def grpcmesh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grpcmesh.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )


def traced_pair(
    procs: ProcessGroup,
    server_flags: tuple[str, ...],
    client_flags: tuple[str, ...],
    client_env: dict[str, str],
) -> tuple[SidecarProc, SidecarProc]:
    """Echo app ← "echo" sidecar ← "web" sidecar, both tracing every call; returns (server, client)."""
    echo = start_echo_proc(procs, "t")
    ratio = ("--sample-ratio", "1.0")
    server = start_sidecar(procs, "echo", echo.target, *ratio, *server_flags, env=FAST_BATCH)
    upstream = ("--endpoints", f"echo=127.0.0.1:{server.inbound}")
    client = start_sidecar(procs, "web", "127.0.0.1:1", *ratio, *upstream, *client_flags, env=client_env)
    return server, client


async def call(outbound: int, rid: str, *, fail: str | None = None, traceparent: str | None = None) -> None:
    md = [("x-request-id", rid)]
    if fail:
        md.append(("x-echo-fail", fail))
    if traceparent:
        md.append(("traceparent", traceparent))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{outbound}") as ch:
        unary = ch.unary_unary(E + "Unary")
        if fail is None:
            assert await unary(b"hi", metadata=md, timeout=10) == b"hi"
            return
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await unary(b"hi", metadata=md, timeout=10)
        assert info.value.code().name == fail


async def test_store_cli_and_admin(procs: ProcessGroup, tmp_path: Path) -> None:
    db = str(tmp_path / "traces.db")
    store = ("--trace-exporter", "store")
    server, client = traced_pair(
        procs, (*store, "--trace-endpoint", db), store, {**FAST_BATCH, "GRPCMESH_TRACE_DB": db}
    )
    rid, bad = f"req-{uuid.uuid4()}", f"bad-{uuid.uuid4()}"
    await call(client.outbound, rid)
    await call(client.outbound, bad, fail="INVALID_ARGUMENT")

    def both_sides(request_id: str) -> str | None:
        trace_id = find_trace(db, request_id) if Path(db).exists() else None
        return trace_id if trace_id and len(get_trace(db, trace_id)) >= 2 else None

    trace_id = str(wait_for(lambda: both_sides(rid), timeout=30, interval=0.1, what="both spans stored"))
    wait_for(lambda: both_sides(bad), timeout=30, interval=0.1, what="the failed call's spans")
    spans = get_trace(db, trace_id)
    by_service = {s.service: s for s in spans}
    assert set(by_service) == {"web-sidecar", "echo-sidecar"}
    assert by_service["web-sidecar"].kind == "CLIENT"
    assert by_service["echo-sidecar"].kind == "SERVER"
    assert by_service["echo-sidecar"].parent_id == by_service["web-sidecar"].span_id

    listing = grpcmesh("traces", "--db", db)
    assert listing.returncode == 0, listing.stderr
    assert rid in listing.stdout
    assert trace_id in listing.stdout
    errors = grpcmesh("traces", "--db", db, "--errors")
    assert bad in errors.stdout
    assert rid not in errors.stdout
    assert rid in grpcmesh("traces", "--db", db, "--service", "web").stdout
    assert grpcmesh("traces", "--db", db, "--service", "nobody").stdout.startswith("no traces")

    for key in (rid, trace_id, trace_id[:10]):
        shown = grpcmesh("traces", "--db", db, key)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines[0].startswith(f"trace {trace_id}  2 spans")
        client_line = next(
            i for i, line in enumerate(lines) if "web-sidecar  echo.v1.Echo/Unary (client)" in line
        )
        server_line = next(
            i for i, line in enumerate(lines) if "echo-sidecar  echo.v1.Echo/Unary (server)" in line
        )
        assert server_line == client_line + 1
        assert "|  " + "  echo-sidecar" in lines[server_line]  # indented one level under the client span
    missing = grpcmesh("traces", "--db", db, "no-such-request")
    assert missing.returncode == 2
    assert "no trace 'no-such-request'" in missing.stderr
    assert "Traceback" not in missing.stderr

    status, page = admin_get(server.admin, "/traces")
    assert status == 200
    assert f'href="/traces/{trace_id}"' in page
    status, page = admin_get(client.admin, f"/traces/{trace_id}")
    assert status == 200
    assert page.count('class="bar') == 2
    assert "echo-sidecar" in page
    status, body = admin_get(client.admin, "/traces.json")
    assert status == 200
    assert any(t["trace_id"] == trace_id and t["request_id"] == rid for t in json.loads(body))
    assert admin_get(client.admin, "/traces/ffffffffffff")[0] == 404


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        self.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def zipkin() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    received: list[tuple[str, str, Any]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v2/spans", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_zipkin_export(procs: ProcessGroup, zipkin: tuple[str, list[tuple[str, str, Any]]]) -> None:
    url, received = zipkin
    flags = ("--trace-exporter", "zipkin", "--trace-endpoint", url)
    _, client = traced_pair(procs, flags, flags, FAST_BATCH)
    rid, caller_trace, caller_span = str(uuid.uuid4()), uuid.uuid4().hex, uuid.uuid4().hex[:16]
    await call(client.outbound, rid, traceparent=f"00-{caller_trace}-{caller_span}-01")

    def spans() -> list[dict[str, Any]]:
        return [
            s
            for _, _, batch in list(received)
            for s in batch
            if s.get("tags", {}).get("mesh.request_id") == rid
        ]

    wait_for(lambda: len(spans()) >= 2, timeout=30, interval=0.1, what="two spans at the Zipkin collector")
    assert {path for path, _, _ in received} == {"/api/v2/spans"}
    assert {ctype for _, ctype, _ in received} == {"application/json"}
    by_kind = {s["kind"]: s for s in spans()}
    out, inb = by_kind["CLIENT"], by_kind["SERVER"]
    assert out["traceId"] == inb["traceId"] == caller_trace
    assert out["parentId"] == caller_span
    assert inb["parentId"] == out["id"]
    assert out["localEndpoint"] == {"serviceName": "web-sidecar"}
    assert inb["localEndpoint"] == {"serviceName": "echo-sidecar"}
    assert out["name"] == "echo.v1.Echo/Unary"
    assert out["tags"]["rpc.grpc.status_code"] == "0"
    assert isinstance(out["timestamp"], int)
    assert out["duration"] >= 1
    # no store configured: the admin page says how to enable it
    status, text = admin_get(client.admin, "/traces")
    assert status == 404
    assert "--trace-exporter store" in text
