"""A real ``redis-server`` for tests, on a free loopback port, with no persistence.

Skips when no binary is found (``$REDIS_SERVER_BIN``, then PATH); fails instead
under ``CI=true``, where the package is installed and a skip would hide a gap.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import LOOPBACK, ManagedProcess, free_port

__all__ = ["RedisServer", "redis_server"]


@dataclass
class RedisServer:
    proc: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"


def redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Starts redis-server, yields it once it accepts connections, stops it afterwards."""
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if binary is None:
        msg = "no redis-server binary (apt-get install redis-server, or set $REDIS_SERVER_BIN)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(workdir)]
    proc = ManagedProcess(argv, workdir / "redis.log")
    try:
        proc.wait_output("Ready to accept connections", timeout=15)
        yield RedisServer(proc, port)
    finally:
        proc.stop(timeout=5)
