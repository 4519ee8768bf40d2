"""A client+server sidecar pair in front of one echo app, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mesh import EchoProc, SidecarProc, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup


@dataclass
class Pair:
    echo: EchoProc
    server: SidecarProc  # inbound in front of echo
    client: SidecarProc  # outbound the "app" calls

    @property
    def outbound(self) -> str:
        return f"127.0.0.1:{self.client.outbound}"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    group = ProcessGroup(Path(tmp_path_factory.mktemp("pair")))
    try:
        echo = start_echo_proc(group, "a")
        server = start_sidecar(
            group,
            "echo",
            echo.target,
            "--access-log",
            "--max-concurrency",
            "4",
            "--max-message-bytes",
            "1048576",
        )
        client = start_sidecar(
            group,
            "client",
            "127.0.0.1:1",
            "--access-log",
            "--endpoints",
            f"echo=127.0.0.1:{server.inbound}",
            "--max-message-bytes",
            "1048576",
            env={"GRPCMESH_CONSUL_TOKEN": "s3cret-token"},
        )
        yield Pair(echo, server, client)
    finally:
        group.stop_all()
