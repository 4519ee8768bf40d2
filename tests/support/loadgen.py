"""Outside load for the sidecar benchmarks: ghz against the grpc-go interop server, nginx, CPU from /proc.

ghz (``make ghz``) and the interop server (``make interop``) are built from the Go module
proxy into ``.cache/bin``; the interop server has no server reflection, so ghz reads the
two methods it calls from ``tests/support/protos/grpc_testing_bench.proto``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import ManagedProcess, ProcessGroup, free_port, wait_port

__all__ = ["GhzResult", "bin_path", "cpu_seconds", "run_ghz", "start_interop_server", "start_nginx"]

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path(__file__).resolve().parent / "protos" / "grpc_testing_bench.proto"
UNARY = "grpc.testing.TestService.UnaryCall"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` so far (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def bin_path(name: str) -> Path | None:
    """``.cache/bin/NAME`` (or ``$GRPC_INTEROP_BIN_DIR/NAME``) when built, else None."""
    base = Path(os.environ.get("GRPC_INTEROP_BIN_DIR") or ROOT / ".cache" / "bin")
    path = base / name
    return path if os.access(path, os.X_OK) else None


@dataclass
class GhzResult:
    count: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def run_ghz(
    ghz: Path, target: str, seconds: float, *, concurrency: int, connections: int = 1, payload: int = 100
) -> GhzResult:
    """One closed-loop ghz run of UnaryCall (``payload`` bytes each way) for ``seconds``."""
    body = base64.b64encode(b"x" * payload).decode()
    data = json.dumps({"response_size": payload, "payload": {"body": body}})
    argv = [
        str(ghz),
        "--insecure",
        "--proto",
        str(PROTO),
        "--call",
        UNARY,
        "-d",
        data,
        "-z",
        f"{seconds}s",
        "--duration-stop",
        "wait",  # in-flight calls at the end finish (and count) rather than fail
        "-c",
        str(concurrency),
        "--connections",
        str(connections),
        "-O",
        "prometheus",
        target,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            key = sample.name + sample.labels.get("quantile", "")
            values[key] = sample.value
    return GhzResult(
        count=int(values["ghz_run_count"]),
        rps=values["ghz_run_rps"],
        p50_ms=values["ghz_run_latency0.5"] / 1e6,
        p99_ms=values["ghz_run_latency0.99"] / 1e6,
        errors=int(values.get("ghz_run_errors", 0)),
    )


def start_interop_server(group: ProcessGroup, server: Path) -> tuple[ManagedProcess, int]:
    port = free_port()
    proc = group.start([str(server), "--port", str(port)], "interop-server")
    wait_port(port)
    return proc, port


def start_nginx(group: ProcessGroup, upstream_port: int, workdir: Path) -> tuple[ManagedProcess, int] | None:
    """nginx ``grpc_pass`` to 127.0.0.1:``upstream_port``: one worker, no master, upstream keepalive.

    ``keepalive_requests`` is raised on both sides: at its default (1000) nginx closes a
    connection every 1000 calls, which a benchmark would count as errors and reconnects.
    """
    nginx = shutil.which("nginx")
    if nginx is None:
        return None
    port = free_port()
    conf = workdir / f"nginx-{port}.conf"
    conf.write_text(
        f"worker_processes 1;\nmaster_process off;\ndaemon off;\npid {workdir}/nginx-{port}.pid;\n"
        f"error_log {workdir}/nginx-error.log;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {workdir}/body;\n  proxy_temp_path {workdir}/proxy;\n"
        f"  fastcgi_temp_path {workdir}/fcgi;\n  uwsgi_temp_path {workdir}/uwsgi;\n  scgi_temp_path {workdir}/scgi;\n"
        f"  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; keepalive_requests 1000000; }}\n"
        f"  server {{ listen 127.0.0.1:{port} http2; location / {{ grpc_pass grpc://up; }} }}\n}}\n"
    )
    proc = group.start([nginx, "-c", str(conf), "-p", str(workdir)], "nginx")
    wait_port(port)
    return proc, port
