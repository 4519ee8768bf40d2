"""A demo-like traced mesh for the observability tests: web sidecar → echo sidecar → echo app.

Both sidecars trace every call into one span store file. ``traffic`` makes a
known number of OK and failing calls (each with its request id); ``Load`` keeps
calls flowing from threads, one in five failing, until stopped.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from grpcmesh.sdk.spanstore import find_trace, get_trace
from tests.support.mesh import SidecarProc, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for

__all__ = ["FAIL_CODE", "Load", "ObsMesh", "running_obs_mesh", "start_obs_mesh", "traffic"]

UNARY = "/echo.v1.Echo/Unary"
FAIL_CODE = "FAILED_PRECONDITION"  # not retried by the sidecar: one attempt, one error span
_FAST_BATCH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@dataclass
class ObsMesh:
    db: Path
    echo: SidecarProc  # the callee's sidecar
    web: SidecarProc  # the caller's sidecar
    ok_ids: list[str] = field(default_factory=list)
    bad_ids: list[str] = field(default_factory=list)


def start_obs_mesh(procs: ProcessGroup, db: Path) -> ObsMesh:
    app = start_echo_proc(procs, "obs")
    store = ("--sample-ratio", "1.0", "--trace-exporter", "store", "--trace-endpoint", str(db))
    echo = start_sidecar(procs, "echo", app.target, *store, env=_FAST_BATCH)
    upstream = ("--endpoints", f"echo=127.0.0.1:{echo.inbound}")
    web = start_sidecar(procs, "web", "127.0.0.1:1", *store, *upstream, env=_FAST_BATCH)
    return ObsMesh(db, echo, web)


@contextlib.contextmanager
def running_obs_mesh(work: Path, ok: int, bad: int) -> Iterator[ObsMesh]:
    """The mesh after ``traffic(ok, bad)``, once every call's spans from both sidecars are stored."""
    procs = ProcessGroup(work)
    try:
        mesh = start_obs_mesh(procs, work / "traces.db")
        traffic(mesh, ok, bad)

        def stored(rid: str) -> bool:
            trace_id = find_trace(mesh.db, rid) if mesh.db.exists() else None
            return bool(trace_id) and len(get_trace(mesh.db, str(trace_id))) >= 2

        wait_for(
            lambda: all(stored(r) for r in [*mesh.bad_ids, *mesh.ok_ids]), timeout=30, what="spans stored"
        )
        yield mesh
    finally:
        procs.stop_all()


def _call(stub: grpc.UnaryUnaryMultiCallable, rid: str, fail: bool) -> str:
    md = [("x-request-id", rid)] + ([("x-echo-fail", FAIL_CODE)] if fail else [])
    try:
        stub(b"hi", metadata=md, timeout=10)
        return "OK"
    except grpc.RpcError as err:
        return str(err.code().name)


def traffic(mesh: ObsMesh, ok: int, bad: int) -> None:
    """``ok`` calls that succeed and ``bad`` that fail, through the web sidecar; ids kept on ``mesh``."""
    with grpc.insecure_channel(f"127.0.0.1:{mesh.web.outbound}") as channel:
        stub = channel.unary_unary(UNARY)
        total = ok + bad
        for i in range(total):
            fail = (i * bad) // total != ((i + 1) * bad) // total  # exactly `bad` failures, spread out
            rid = f"{'bad' if fail else 'ok'}-{uuid.uuid4()}"
            code = _call(stub, rid, fail)
            assert code == (FAIL_CODE if fail else "OK"), (rid, code)
            (mesh.bad_ids if fail else mesh.ok_ids).append(rid)


class Load:
    """Calls from ``threads`` threads until stopped; every fifth call fails. Counts what returned."""

    def __init__(self, outbound: int, threads: int = 3) -> None:
        self._target = f"127.0.0.1:{outbound}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.codes: dict[str, int] = {}
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with grpc.insecure_channel(self._target) as channel:
            stub = channel.unary_unary(UNARY)
            n = 0
            while not self._stop.is_set():
                code = _call(stub, f"load-{uuid.uuid4()}", n % 5 == 4)
                n += 1
                with self._lock:
                    self.codes[code] = self.codes.get(code, 0) + 1

    def calls(self) -> int:
        with self._lock:
            return sum(self.codes.values())

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        wait_for(lambda: self.calls() >= 20, timeout=30, interval=0.05, what="load flowing")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
