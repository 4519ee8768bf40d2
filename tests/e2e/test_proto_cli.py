"""`grpcmesh proto new` + `grpcmesh proto gen` produce a service that answers over a real socket."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from tests.support.procs import ProcessGroup, free_port

GRPCMESH = shutil.which("grpcmesh", path=str(Path(sys.executable).parent)) or "grpcmesh"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCMESH, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_new_gen_serve_call(tmp_path: Path, procs: ProcessGroup) -> None:
    assert _cli("proto", "new", "shop.v1.Orders", "--out", str(tmp_path)).returncode == 0
    gen = _cli("proto", "gen", str(tmp_path / "protos"), "--out", str(tmp_path / "gen"))
    assert gen.returncode == 0, gen.stderr
    assert (tmp_path / "gen/shop/v1/orders_pb2.pyi").is_file()

    port = free_port()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "gen"), str(tmp_path)])}
    server = procs.start(
        [sys.executable, str(tmp_path / "server.py"), "--port", str(port)], "orders", env=env
    )
    server.wait_output("listening on", timeout=30)

    sys.path.insert(0, str(tmp_path / "gen"))
    try:
        from shop.v1 import orders_pb2, orders_pb2_grpc  # type: ignore[import-not-found]

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = orders_pb2_grpc.OrdersStub(channel)
            assert stub.Echo(orders_pb2.EchoRequest(message="hi"), timeout=10).message == "hi"
            with pytest.raises(grpc.RpcError) as err:
                stub.Echo(orders_pb2.EchoRequest(), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "message" in err.value.details()
    finally:
        sys.path.remove(str(tmp_path / "gen"))
        for mod in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[mod]
    assert server.stop() == 0


def test_scaffolded_test_passes(tmp_path: Path) -> None:
    assert _cli("proto", "new", "shop.v1.Orders", "--out", str(tmp_path)).returncode == 0
    assert _cli("proto", "gen", str(tmp_path / "protos"), "--out", str(tmp_path / "gen")).returncode == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "gen"), str(tmp_path)])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_orders.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_gen_reports_protoc_errors_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/broken.proto").write_text('syntax = "proto3";\nmessage Broken { string x = ; }\n')
    run = _cli("proto", "gen", str(tmp_path / "bad"), "--out", str(tmp_path / "gen"))
    assert run.returncode == 2  # a usage error, as for every command
    assert "broken.proto:2" in run.stderr
    assert "Traceback" not in run.stderr


def test_gen_missing_dir(tmp_path: Path) -> None:
    run = _cli("proto", "gen", str(tmp_path / "nope"), "--out", str(tmp_path / "gen"))
    assert run.returncode == 2  # a usage error, as for every command
    assert "no such directory" in run.stderr
    assert "Traceback" not in run.stderr


def test_gen_nested_packages_and_well_known_types(tmp_path: Path) -> None:
    src = tmp_path / "protos"
    (src / "acme/common/v1").mkdir(parents=True)
    (src / "acme/billing/v1").mkdir(parents=True)
    (src / "acme/common/v1/money.proto").write_text(
        'syntax = "proto3";\npackage acme.common.v1;\nmessage Money { string currency = 1; int64 units = 2; }\n'
    )
    (src / "acme/billing/v1/invoices.proto").write_text(
        'syntax = "proto3";\npackage acme.billing.v1;\n'
        'import "acme/common/v1/money.proto";\nimport "google/protobuf/timestamp.proto";\n'
        "message Invoice { acme.common.v1.Money total = 1; google.protobuf.Timestamp due = 2; }\n"
        "service Invoices { rpc Get(Invoice) returns (Invoice); }\n"
    )
    assert _cli("proto", "gen", str(src), "--out", str(tmp_path / "gen")).returncode == 0
    code = "from acme.billing.v1 import invoices_pb2, invoices_pb2_grpc; print(invoices_pb2.Invoice(total={'units': 3}).total.units)"
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "gen")},
        check=False,
    )
    assert run.stdout.strip() == "3", run.stderr


def test_demo_runs() -> None:
    """`make demo`: two instances behind sidecars, one killed mid-traffic, events through the mesh."""
    run = _cli("demo")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "served by {'orders-1': 10, 'orders-2': 10}" in run.stdout
    assert "INVALID_ARGUMENT: message: must not be empty" in run.stdout
    assert "60 more calls: 0 failed" in run.stdout
    assert "'OPEN'" in run.stdout  # the killed instance's breaker
    assert "read back: ['0:OrderCreated', '1:ItemAdded', '2:OrderSubmitted']" in run.stdout
    assert "ABORTED" in run.stdout
    assert "request id demo-append-order-42" in run.stdout  # the waterfall from the span store
    assert "web-sidecar  grpcmesh.api.v1.EventStore/Append (client)" in run.stdout
    assert "eventstore-sidecar  grpcmesh.api.v1.EventStore/Append (server)" in run.stdout
    assert "all processes stopped" in run.stdout
    assert "grpcmesh stat ADMIN" in run.stdout.splitlines()[-2]  # it ends pointing to the pages and stat


def test_demo_keep_serves_the_pages_it_points_to(procs: ProcessGroup) -> None:
    """`make demo ARGS=--keep`: the printed pages answer and `grpcmesh stat` reads the sidecars."""
    demo = procs.start([GRPCMESH, "demo", "--keep"], "demo-keep", env={"PYTHONUNBUFFERED": "1"})
    demo.wait_output("grpcmesh traces --db", timeout=240)
    out = demo.output()
    web = re.search(r"service map +(http://127\.0\.0\.1:\d+)/map", out)
    stat = re.search(r"grpcmesh stat ((?:127\.0\.0\.1:\d+ ?)+)", out)
    assert web is not None
    assert stat is not None
    with urllib.request.urlopen(f"{web.group(1)}/traces.json?errors=1", timeout=10) as resp:
        assert any(t["error"] for t in json.loads(resp.read()))  # the demo's invalid call
    with urllib.request.urlopen(f"{web.group(1)}/map.json?window=1h", timeout=10) as resp:
        edges = {(e["caller"], e["callee"]) for e in json.loads(resp.read())["edges"]}
    assert {("web", "orders"), ("web", "eventstore")} <= edges
    with urllib.request.urlopen(f"{web.group(1)}/stat", timeout=10) as resp:
        assert resp.status == 200
    table = _cli("stat", *stat.group(1).split(), "--once", "--interval", "0.5")
    assert table.returncode == 0, table.stderr
    assert "/shop.v1.Orders/Echo" in table.stdout
    os.kill(demo.pid, signal.SIGINT)  # ^C: the demo stops its mesh
    demo.wait_output("all processes stopped", timeout=60)
