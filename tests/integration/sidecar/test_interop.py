"""The grpc-go interop suite through one sidecar and through a sidecar pair.

Every case that passes against the grpc-go interop server directly must pass
through the mesh too. The cases that end in an error status run first, each
three times in a row (a mesh that counted an app's answers against its only
endpoint trips its breaker there and fails what follows); then every case,
three rounds, interleaved; the two paths alternate call by call.
"""

from __future__ import annotations

from tests.support.interop import CANDIDATE_CASES, ERROR_CASES, require_interop, run_case
from tests.support.mesh import SidecarProc, start_sidecar
from tests.support.procs import ProcessGroup, free_port, wait_port

ROUTES = {"grpc.testing.TestService": "interop", "grpc.testing.UnimplementedService": "interop"}


def outbound(procs: ProcessGroup, upstream: str) -> SidecarProc:
    return start_sidecar(
        procs, "caller", "127.0.0.1:1", "--endpoints", f"interop={upstream}", config={"routes": ROUTES}
    )


def test_every_direct_passing_case_passes_through_one_sidecar_and_a_pair(procs: ProcessGroup) -> None:
    client, server = require_interop()
    port = free_port()
    procs.start([server, "--port", str(port)], "interop-server")
    wait_port(port)
    probes = [run_case(client, port, case, "direct", timeout=3.0) for case in CANDIDATE_CASES]
    passing = [p.case for p in probes if p.returncode == 0]
    assert set(ERROR_CASES) <= set(passing), [(p.case, p.output[-300:]) for p in probes if p.returncode]
    ordered = [c for c in ERROR_CASES if c in passing] + [c for c in passing if c not in ERROR_CASES]

    one = outbound(procs, f"127.0.0.1:{port}")
    inbound = start_sidecar(procs, "interop", f"127.0.0.1:{port}")
    pair = outbound(procs, f"127.0.0.1:{inbound.inbound}")
    paths = {"one sidecar": one.outbound, "sidecar pair": pair.outbound}

    errors_first = [c for c in ordered if c in ERROR_CASES for _ in range(3)]
    failures = []
    for case in errors_first + ordered * 3:
        for path, via in paths.items():
            run = run_case(client, via, case, path)
            if run.returncode != 0:
                failures.append((run.path, run.case, run.output[-400:]))
    assert not failures, failures
    assert len(ordered) >= 14, ordered
