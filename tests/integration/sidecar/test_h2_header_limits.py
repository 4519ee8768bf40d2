"""The proxy is never the tightest header limit: 70 KB of metadata reaches grpc-go through a sidecar.

grpc-go accepts header lists up to 16 MiB by default; the sidecar advertises
and accepts the same (``[h2] max_header_list_bytes``), so a call with 70 KB of
request metadata works through the sidecar exactly as it does direct, while a
list past the limit still ends only the connection that sent it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType
from tests.support.h2wire import RawClient, goaway_code, request_block
from tests.support.mesh import ROOT, SidecarProc, start_sidecar
from tests.support.procs import ProcessGroup, free_port, wait_port

INTEROP = ROOT / ".cache" / "bin" / "grpc-interop-server"
EMPTY_CALL = "/grpc.testing.TestService/EmptyCall"
BIG = [("x-big-metadata", "v" * 70_000)]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, SidecarProc]]:
    if not INTEROP.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("grpc-interop-server missing: CI must run `make judges` first")
        pytest.skip("grpc-interop-server not built (make judges)")
    group = ProcessGroup(Path(tmp_path_factory.mktemp("limits")))
    try:
        port = free_port()
        group.start([str(INTEROP), "--port", str(port)], "grpc-interop-server")
        wait_port(port)
        yield port, start_sidecar(group, "interop", f"127.0.0.1:{port}")
    finally:
        group.stop_all()


def _empty_call(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        result: bytes = channel.unary_unary(EMPTY_CALL)(b"", metadata=BIG, timeout=20)
        return result


def test_70kb_of_metadata_passes_like_direct(mesh: tuple[int, SidecarProc]) -> None:
    direct, sidecar = mesh
    assert _empty_call(direct) == b""
    assert _empty_call(sidecar.inbound) == b""


def test_a_header_list_over_the_limit_ends_only_its_connection(mesh: tuple[int, SidecarProc]) -> None:
    _, sidecar = mesh
    attacker = RawClient(sidecar.inbound)
    block = request_block([("x-huge", "v" * 8000)] * 2200)  # 17.6 MB: over the 16 MiB list limit
    chunks = [block[i : i + f.MAX_FRAME] for i in range(0, len(block), f.MAX_FRAME)]
    first = f.frame(FrameType.HEADERS, 0, 1, chunks[0])
    rest = [
        f.frame(FrameType.CONTINUATION, Flag.END_HEADERS if c is chunks[-1] else 0, 1, c) for c in chunks[1:]
    ]
    attacker.send(first, *rest)
    assert goaway_code(attacker.read_until_closed()) == ErrorCode.ENHANCE_YOUR_CALM
    attacker.close()
    assert _empty_call(sidecar.inbound) == b""
