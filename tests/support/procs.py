"""Helpers for tests that use real processes over real sockets.

Every port comes from the OS (bind to 0 on loopback), every wait is bounded,
and every process started through :class:`ProcessGroup` is stopped at the end of
the test, even when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "ManagedProcess",
    "ProcessGroup",
    "ServiceProc",
    "free_port",
    "start_service",
    "wait_for",
    "wait_for_async",
    "wait_port",
]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the OS picked it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> object:
    """Polls ``predicate`` until truthy; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], Awaitable[object]],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> object:
    """Async :func:`wait_for` for predicates that make calls."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def _port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, timeout: float = 15.0, host: str = LOOPBACK) -> None:
    """Blocks until something accepts TCP connections on ``host:port``."""
    wait_for(lambda: _port_open(port, host), timeout, what=f"{host}:{port} to accept connections")


class ManagedProcess:
    """A child process whose output goes to a log file, stopped with bounded waits."""

    def __init__(
        self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float = 15.0) -> None:
        """Waits until the log contains ``needle``; fails early if the process died."""

        def seen() -> bool:
            if needle in self.output():
                return True
            if not self.alive():
                raise RuntimeError(f"{self.argv[0]} exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            return False

        wait_for(seen, timeout, what=f"{needle!r} in {self.log_path.name}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (simulates a crash)."""
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        try:
            if self.alive():
                with contextlib.suppress(ProcessLookupError):
                    self.signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            self._log.close()
        return self.proc.returncode


class ProcessGroup:
    """Starts processes for one test and stops all of them afterwards."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[ManagedProcess] = []

    def start(
        self, argv: Sequence[str], name: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(argv, self.log_dir / f"{name}-{len(self._procs)}.log", env=env, cwd=cwd)
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            with contextlib.suppress(Exception):
                proc.stop(timeout=5)


@dataclass
class ServiceProc:
    """A ``grpcmesh <command>`` service process listening on loopback ``port``."""

    proc: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    target = address  # the name sidecar helpers use for an app address


def start_service(procs: ProcessGroup, command: str, *args: str, port: int | None = None) -> ServiceProc:
    """Runs ``grpcmesh <command> --port P <args>`` and waits for its 'listening on' line."""
    port = port or free_port()
    argv = [sys.executable, "-m", "grpcmesh.cli", command, "--port", str(port), *args]
    proc = procs.start(argv, command)
    proc.wait_output(f"listening on {LOOPBACK}:{port}", timeout=30)
    return ServiceProc(proc, port)
