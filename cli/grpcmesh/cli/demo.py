"""``grpcmesh demo``: a small mesh on embedded defaults, end to end, on loopback.

What it starts (all children of this process, stopped on exit, OS-chosen ports):
two instances of a freshly scaffolded ``shop.v1.Orders`` service, each behind
its own sidecar; the event store on SQLite behind a sidecar; and a sidecar for
the caller ("web"). Discovery is the watched registry file (no Consul needed).
It then calls through the mesh, kills one Orders instance mid-traffic to show
retries and the circuit breaker, and appends/reads events through the mesh.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import os
import re
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.api.v1 import eventstore_pb2_grpc as es_grpc
from grpcmesh.cli.protogen import generate
from grpcmesh.cli.scaffold import scaffold
from grpcmesh.cli.traceview import render_waterfall
from grpcmesh.sdk import AsyncMeshClient, MeshError
from grpcmesh.sdk.headers import REQUEST_ID
from grpcmesh.sdk.spanstore import find_trace, get_trace

__all__ = ["run_demo"]

DEMO_REQUEST_ID = "demo-append-order-42"

_READY = re.compile(r"sidecar ready .*outbound=(\d+) inbound=(\d+) admin=(\d+)")
_LISTENING = re.compile(r"listening on [\d.]+:(\d+)")


class Child:
    """A child process logging to a file, awaited by a line it prints when ready."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self._out: IO[bytes] = self.log.open("wb")
        self.proc = asyncio.create_subprocess_exec(
            *argv, cwd=workdir, env={**os.environ, **env}, stdout=self._out, stderr=self._out
        )
        self.process: asyncio.subprocess.Process | None = None

    async def ready(self, pattern: re.Pattern[str], within: float = 30.0) -> re.Match[str]:
        self.process = await self.proc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            match = pattern.search(self.log.read_text(errors="replace"))
            if match:
                return match
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; its log:\n{self.log.read_text()[-2000:]}")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(sig)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._out.close()


class Mesh:
    """The demo's processes and registry file."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.registry = workdir / "registry.toml"
        self.registry.write_text("")
        self.entries: dict[str, list[str]] = collections.defaultdict(list)
        self.children: list[Child] = []
        self.traces = workdir / "traces.db"
        self.admins: list[tuple[str, int]] = []  # (service, admin port) of each sidecar
        self.env = {
            "PYTHONPATH": os.pathsep.join([str(workdir / "gen"), str(workdir)]),
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # flush spans to the store within 0.2 s
        }

    def start(self, name: str, argv: Sequence[str]) -> Child:
        child = Child(name, argv, self.workdir, self.env)
        self.children.append(child)
        return child

    async def app(self, name: str, argv: Sequence[str]) -> tuple[Child, int]:
        child = self.start(name, argv)
        return child, int((await child.ready(_LISTENING)).group(1))

    async def sidecar(
        self, service: str, app_port: int, grpc_service: str = "", *flags: str
    ) -> tuple[int, int, int]:
        cli = [sys.executable, "-m", "grpcmesh.cli", "sidecar", "--service", service, *flags]
        cli += ["--trace-exporter", "store", "--trace-endpoint", str(self.traces), "--sample-ratio", "1.0"]
        child = self.start(
            f"sidecar-{service}-{len(self.children)}",
            [
                *cli,
                "--app",
                f"127.0.0.1:{app_port}",
                "--outbound",
                "127.0.0.1:0",
                "--inbound",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--endpoints-file",
                str(self.registry),
            ],
        )
        outbound, inbound, admin = (int(g) for g in (await child.ready(_READY)).groups())
        self.admins.append((service, admin))
        if grpc_service:
            meta = f'meta = {{ grpc_services = "{grpc_service}" }}'
            self.entries[service].append(f'address = "127.0.0.1"\nport = {inbound}\n{meta}\n')
            self.registry.write_text(
                "".join(f"[[services.{s}]]\n{e}\n" for s, items in self.entries.items() for e in items)
            )
        return outbound, inbound, admin

    async def close(self) -> None:
        await asyncio.gather(*(c.stop() for c in reversed(self.children)), return_exceptions=True)


def _clusters(admin_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


async def _orders(web: AsyncMeshClient, pb2: Any, pb2_grpc: Any, apps: list[Child]) -> None:
    stub = web.stub(pb2_grpc.OrdersStub, target="orders")
    await _until_routable(stub, pb2)
    served = collections.Counter[str]()
    for i in range(20):
        reply = await stub.Echo(pb2.EchoRequest(message=f"order {i}"), timeout=5)
        served[reply.served_by] += 1
    print(f"4. 20 calls web → orders through two sidecars: served by {dict(sorted(served.items()))}")
    try:
        await stub.Echo(pb2.EchoRequest(), timeout=5)
    except MeshError as err:
        print(f"5. invalid call → {err.code.name}: {err.details}; fields {err.field_violations()}")
    await apps[0].stop(signal.SIGKILL)
    failures, served = 0, collections.Counter[str]()
    for i in range(60):
        try:
            reply = await stub.Echo(pb2.EchoRequest(message=f"after kill {i}"), timeout=5)
            served[reply.served_by] += 1
        except MeshError:
            failures += 1
    print(f"6. killed orders-1 (SIGKILL); 60 more calls: {failures} failed, served by {dict(served)}")


async def _until_routable(stub: Any, pb2: Any) -> None:
    """The registry file is re-read by each sidecar within a second: wait for both instances."""
    loop = asyncio.get_running_loop()
    deadline, seen = loop.time() + 20, set[str]()
    while len(seen) < 2 and loop.time() < deadline:
        try:
            seen.add((await stub.Echo(pb2.EchoRequest(message="warm-up"), timeout=2)).served_by)
        except MeshError:
            await asyncio.sleep(0.1)
    if len(seen) < 2:
        raise RuntimeError(f"only {sorted(seen)} became reachable through the mesh")


async def _events(web: AsyncMeshClient) -> None:
    store = web.stub(es_grpc.EventStoreStub, target="eventstore")
    events = [
        es.ProposedEvent(
            id=f"00000000-0000-4000-8000-00000000000{i}", type=t, data=d, content_type="application/json"
        )
        for i, (t, d) in enumerate(
            [
                ("OrderCreated", b'{"customer":"ada"}'),
                ("ItemAdded", b'{"sku":"tea","qty":2}'),
                ("OrderSubmitted", b"{}"),
            ],
            start=1,
        )
    ]
    result = await store.Append(
        es.AppendRequest(
            stream_id="order-42", expected_revision=es.ExpectedRevision(no_stream=es.Empty()), events=events
        ),
        timeout=10,
        metadata=((REQUEST_ID, DEMO_REQUEST_ID),),
    )
    print(
        f"8. appended 3 events to order-42 through the mesh: revision {result.next_revision}, "
        f"position {result.position}"
    )
    read = [
        f"{e.revision}:{e.type}" async for e in store.ReadStream(es.ReadStreamRequest(stream_id="order-42"))
    ]
    print(f"9. read back: {read}")
    try:
        await store.Append(
            es.AppendRequest(
                stream_id="order-42",
                expected_revision=es.ExpectedRevision(exact=0),
                events=[es.ProposedEvent(id="00000000-0000-4000-8000-000000000009", type="Late")],
            )
        )
    except MeshError as err:
        print(f"10. stale writer (expected revision 0) → {err.code.name}: {err.details}")


async def _show_trace(db: Path) -> None:
    """Waits (bounded) for the Append's spans from both sidecars, then prints the waterfall."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    spans: list[Any] = []
    while loop.time() < deadline:
        trace_id = find_trace(db, DEMO_REQUEST_ID) if await asyncio.to_thread(db.exists) else None
        spans = get_trace(db, trace_id) if trace_id else []
        if len(spans) >= 2:
            break
        await asyncio.sleep(0.1)
    print(f"11. grpcmesh traces --db traces.db {DEMO_REQUEST_ID}  (spans from both sidecars, one trace):")
    print(render_waterfall(spans) if spans else "    (no spans arrived)")


def _point_to_pages(mesh: Mesh) -> None:
    """Where to look while the mesh is up: the sidecars' observability pages and the live commands."""
    web = next(port for service, port in mesh.admins if service == "web")
    orders = [f"127.0.0.1:{port}" for service, port in mesh.admins if service == "orders"]
    print("12. the mesh stays up until ^C; look around:")
    print(f"    trace search   http://127.0.0.1:{web}/traces?errors=1   (and /traces/<id>, /traces.json)")
    print(f"    service map    http://127.0.0.1:{web}/map")
    print(f"    golden metrics http://127.0.0.1:{web}/stat")
    print(f"    grpcmesh stat {' '.join(orders)}       (req/s, success rate, p50/p95/p99, refreshing)")
    print(f"    grpcmesh tap orders --admin {orders[0]}  (live calls)")
    print(f"    grpcmesh traces --db {mesh.traces} --errors")


async def run_demo(keep: bool = False) -> int:
    """Runs the demo; returns the process exit status. ``keep``: leave the mesh up until ^C."""
    with tempfile.TemporaryDirectory(prefix="grpcmesh-demo-") as tmp:
        workdir = Path(tmp)
        print("1. grpcmesh proto new shop.v1.Orders && grpcmesh proto gen protos --out gen")
        scaffold("shop.v1.Orders", workdir)
        generate(workdir / "protos", workdir / "gen")
        mesh = Mesh(workdir)
        try:
            apps = []
            for n in (1, 2):
                app, port = await mesh.app(
                    f"orders-{n}", [sys.executable, "server.py", "--port", "0", "--name", f"orders-{n}"]
                )
                apps.append(app)
                await mesh.sidecar("orders", port, "shop.v1.Orders")
            print("2. two Orders instances up, each behind its own sidecar (registry: registry.toml)")
            _, es_port = await mesh.app(
                "eventstore",
                [
                    sys.executable,
                    "-m",
                    "grpcmesh.cli",
                    "eventstore",
                    "--db",
                    f"sqlite:///{workdir / 'events.db'}",
                    "--port",
                    "0",
                ],
            )
            await mesh.sidecar("eventstore", es_port, "grpcmesh.api.v1.EventStore")
            # round robin makes the kill visible: p2c_ewma would route sequential calls to one instance
            web_out, _, web_admin = await mesh.sidecar("web", 1, "", "--balancer", "round_robin")
            print(
                f"3. event store (SQLite) behind a sidecar; caller sidecar 'web' outbound 127.0.0.1:{web_out}"
            )
            sys.path.insert(0, str(workdir / "gen"))
            pb2 = importlib.import_module("shop.v1.orders_pb2")
            pb2_grpc = importlib.import_module("shop.v1.orders_pb2_grpc")
            async with AsyncMeshClient(service="web", sidecar=f"127.0.0.1:{web_out}") as web:
                await _orders(web, pb2, pb2_grpc, apps)
                orders = next(c for c in _clusters(web_admin)["outbound"] if c["service"] == "orders")
                states = {e["target"]: e["breaker"]["state"] for e in orders["endpoints"]}
                print(f"7. web sidecar /clusters: breakers {states}; retry budget {orders['retry']}")
                await _events(web)
                await _show_trace(mesh.traces)
            if keep:
                _point_to_pages(mesh)
                with contextlib.suppress(asyncio.CancelledError):  # ^C cancels this wait: stop the mesh
                    await asyncio.Event().wait()
        finally:
            await mesh.close()
            sys.path[:] = [p for p in sys.path if p != str(workdir / "gen")]
        print("13. all processes stopped")
    if not keep:
        print(
            "14. next: `make demo ARGS=--keep` (or `grpcmesh demo --keep`) keeps this mesh up and prints\n"
            "    its pages - trace search /traces, service map /map, golden metrics /stat on each sidecar's\n"
            "    admin port - and the `grpcmesh stat ADMIN...` and `grpcmesh tap SERVICE --admin ADMIN`\n"
            "    commands to watch it live"
        )
    return 0
