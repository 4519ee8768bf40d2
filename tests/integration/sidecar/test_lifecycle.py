"""Process lifecycle: graceful drain on SIGTERM, and invalid config refused up front."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import grpc

from tests.support.mesh import ROOT, EchoProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"


async def test_sigterm_drains_in_flight_calls_and_exits_zero(procs: ProcessGroup) -> None:
    echo = start_echo_proc(procs, "d")
    sidecar = start_sidecar(procs, "echo", echo.target, "--drain-timeout", "10")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.inbound}") as ch:
        slow = ch.unary_unary(E + "Unary")(b"slow", metadata=(("x-echo-delay-ms", "1500"),), timeout=20)
        await wait_for_async(lambda: _app_has_call(echo), 10, what="the slow call to reach the app")
        sidecar.proc.signal(signal.SIGTERM)
        await wait_for_async(lambda: _not_ready(sidecar.admin), 10, what="/ready to turn 503 while draining")
        assert not slow.done()  # still in flight while the sidecar drains
        assert await slow == b"slow"
    sidecar.proc.proc.wait(timeout=15)
    assert sidecar.proc.proc.returncode == 0
    assert "sidecar drained" in sidecar.proc.output()


async def _app_has_call(echo: EchoProc) -> bool:
    async with grpc.aio.insecure_channel(echo.target) as ch:
        body = json.loads(await ch.unary_unary(E + "Stats")(b"", timeout=5))
    return bool(body["calls"].get("Unary"))


async def _not_ready(admin: int) -> bool:
    return await asyncio.to_thread(lambda: admin_get(admin, "/ready")[0] == 503)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grpcmesh.cli", "sidecar", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_invalid_flag_value_names_the_key() -> None:
    result = run_cli("--service", "orders", "--app", "not-an-address")
    assert result.returncode == 2
    assert "app: expected host:port" in result.stderr


def test_invalid_toml_key_names_the_key(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "bad.toml"
    path.write_text('service = "orders"\napp = "127.0.0.1:1"\n[cluster.retry]\nmax_attempts = 0\n')
    result = run_cli("--config", str(path))
    assert result.returncode == 2
    assert "cluster.retry.max_attempts" in result.stderr


def test_missing_service_is_reported() -> None:
    result = run_cli("--app", "127.0.0.1:1")
    assert result.returncode == 2
    assert "service: required" in result.stderr
