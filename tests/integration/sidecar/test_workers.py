"""``grpcmesh sidecar --workers 2``: connections spread over two processes, one admin for both.

Real processes: an echo app, a two-worker sidecar in front of it; calls over many client
connections (a local subchannel pool per channel, so each channel is its own connection).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import grpc
import pytest

from tests.support.mesh import SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, free_port, wait_for

PING = "/echo.v1.Echo/Ping"
CONNECTIONS = 24


def two_workers(procs: ProcessGroup) -> SidecarProc:
    echo = start_echo_proc(procs, "w")
    return start_sidecar(
        procs, "caller", "127.0.0.1:1", "--endpoints", f"echo={echo.target}", "--workers", "2"
    )


def worker_pids(sc: SidecarProc) -> list[int]:
    return [w["pid"] for w in sc.admin_json("/workers")["workers"]]


def call_over_many_connections(sc: SidecarProc, calls_each: int) -> tuple[list[grpc.Channel], int]:
    channels = [
        grpc.insecure_channel(f"127.0.0.1:{sc.outbound}", options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    done = 0
    for ch in channels:
        ping = ch.unary_unary(PING)
        for _ in range(calls_each):
            assert ping(b"hello", timeout=10) == b"hello"
            done += 1
    return channels, done


def metric(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_two_workers_share_connections_and_metrics_sum(procs: ProcessGroup) -> None:
    sc = two_workers(procs)
    channels, done = call_over_many_connections(sc, 3)
    try:
        clusters = sc.admin_json("/clusters")
        per_worker = clusters["per_worker"]
        assert [w["pid"] for w in per_worker] == worker_pids(sc)
        conns = [w["http2"]["outbound_listener"]["connections"] for w in per_worker]
        assert all(c > 0 for c in conns), conns  # both workers accepted some of the connections
        assert sum(conns) == CONNECTIONS == clusters["totals"]["http2"]["outbound_listener"]["connections"]
        served = [sum(c["requests_total"] for c in w["outbound"]) for w in per_worker]
        assert all(s > 0 for s in served), served
        assert sum(served) == done
        assert clusters["totals"]["outbound_requests"] == {"echo": done}
        status, text = admin_get(sc.admin, "/metrics")
        assert status == 200
        ok = 'grpcmesh_requests_total{code="OK",direction="outbound",method="/echo.v1.Echo/Ping",service="echo"}'
        assert metric(text, ok) == done  # one sample, the sum of both workers'
        assert metric(text, "grpcmesh_request_duration_seconds_count{") == done
        assert 'worker="0"' in text  # states (breakers) stay per worker
        assert 'worker="1"' in text
        assert admin_get(sc.admin, "/ready")[0] == 200
    finally:
        for ch in channels:
            ch.close()


def test_sigterm_stops_every_worker(procs: ProcessGroup) -> None:
    sc = two_workers(procs)
    pids = worker_pids(sc)
    assert sc.proc.stop(timeout=20) == 0
    wait_for(lambda: all(gone(p) for p in pids), timeout=10, what="workers gone")
    assert "sidecar drained (2 workers)" in sc.proc.log_path.read_text()


def test_supervisor_killed_takes_its_workers_along(procs: ProcessGroup) -> None:
    sc = two_workers(procs)
    pids = worker_pids(sc)
    os.kill(sc.proc.pid, signal.SIGKILL)  # the supervisor alone: workers are in their own group
    wait_for(lambda: all(gone(p) for p in pids), timeout=10, what="workers gone after the supervisor")


def test_killed_worker_is_replaced(procs: ProcessGroup) -> None:
    sc = two_workers(procs)
    old = worker_pids(sc)
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: worker_pids(sc)[0] not in (0, old[0]), timeout=20, what="a new worker 0")
    wait_for(lambda: admin_get(sc.admin, "/ready")[0] == 200, timeout=30, what="ready again")
    assert worker_pids(sc)[1] == old[1]
    assert f"worker 0 pid={old[0]} exited" in sc.proc.output()
    assert json.loads(admin_get(sc.admin, "/workers")[1])["restarts"] == 1
    channels, _ = call_over_many_connections(sc, 1)
    for ch in channels:
        ch.close()
    served = [
        sum(c["requests_total"] for c in w["outbound"]) for w in sc.admin_json("/clusters")["per_worker"]
    ]
    assert all(s > 0 for s in served), served  # the new worker 0 serves too
    assert metric(admin_get(sc.admin, "/metrics")[1], "grpcmesh_worker_restarts_total") == 1


def test_a_taken_port_is_an_error_not_shared(procs: ProcessGroup) -> None:
    sc = two_workers(procs)
    argv = [sys.executable, "-m", "grpcmesh.cli", "sidecar", "--service", "s", "--app", "127.0.0.1:1"]
    argv += [
        "--outbound",
        f"127.0.0.1:{free_port()}",
        "--inbound",
        f"127.0.0.1:{sc.inbound}",
        "--endpoints",
        "x=127.0.0.1:1",
        "--workers",
        "2",
    ]
    second = procs.start(argv, "second")
    second.proc.wait(timeout=30)
    assert second.proc.returncode == 2
    assert f"inbound: cannot listen on 127.0.0.1:{sc.inbound}" in second.output()


@pytest.mark.parametrize("value", ["0", "65"])
def test_bad_worker_count_names_the_key(procs: ProcessGroup, value: str) -> None:
    proc = procs.start(
        [
            sys.executable,
            "-m",
            "grpcmesh.cli",
            "sidecar",
            "--service",
            "s",
            "--app",
            "127.0.0.1:1",
            "--workers",
            value,
        ],
        "bad-workers",
    )
    proc.proc.wait(timeout=30)
    assert proc.proc.returncode == 2
    assert "workers: must be within [1, 64]" in proc.output()
