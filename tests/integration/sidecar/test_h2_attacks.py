"""Known HTTP/2 denial-of-service patterns against a real sidecar's inbound, one test each.

Each attack runs on its own raw connection while a well-behaved gRPC client
calls through the same listener: the attacker's connection must end with
GOAWAY (ENHANCE_YOUR_CALM, or NO_ERROR for the idle and keepalive cases),
within the frames its budget allows, the good client must see no failed call,
and the sidecar's RSS must stay under ``RSS_BOUND``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.frames import ErrorCode, Flag, FrameType, Setting
from grpcmesh.sidecar.h2.hpack_out import encode_int
from grpcmesh.sidecar.h2.limits import H2Limits
from tests.support.h2wire import RawClient, grpc_message, parse_frames, request_block, rss_bytes
from tests.support.mesh import SidecarProc, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for

RSS_BOUND = 256 << 20  # the sidecar process, during and after each attack
LIMITS = H2Limits()
TIMERS = {"idle_timeout_s": 3.0, "keepalive_s": 1.0, "keepalive_timeout_s": 1.0, "stall_timeout_s": 1.0}
FLOOD = 20_000  # frames an attacker tries to send (far beyond every budget)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProc]:
    group = ProcessGroup(Path(tmp_path_factory.mktemp("attacks")))
    try:
        echo = start_echo_proc(group, "a")
        yield start_sidecar(group, "echo", echo.target, config={"h2": TIMERS})
    finally:
        group.stop_all()


class GoodClient(threading.Thread):
    """Calls Ping through the sidecar in a loop; every failure is kept."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.ping = self.channel.unary_unary("/echo.v1.Echo/Ping")
        self.ok = 0
        self.failed: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.ping(b"hello", timeout=20)
                self.ok += 1
            except grpc.RpcError as err:
                self.failed.append(f"{err.code()}: {err.details()}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        self.channel.close()


def attack(
    sidecar: SidecarProc,
    frames: Callable[[], Iterator[bytes]],
    *,
    settings: dict[int, int] | None = None,
    answer_pings: bool = False,
) -> tuple[list[tuple[int, int, int, bytes]], int, float]:
    """Runs one attack beside a good client: (frames received, frames sent, seconds taken)."""
    good = GoodClient(sidecar.inbound)
    good.start()
    try:
        wait_for(lambda: good.ok >= 3 or bool(good.failed), 30, what="the good client's first calls")
        started = time.monotonic()
        attacker = RawClient(sidecar.inbound, settings)
        sent = 0
        for batch in frames():
            if not attacker.send(batch):
                break
            sent += 1
        received = attacker.read_until_closed(answer_pings=answer_pings)
        attacker.close()
        elapsed = time.monotonic() - started
        rss = rss_bytes(sidecar.proc.pid)
        ok_before = good.ok
        wait_for(lambda: good.ok > ok_before + 3 or bool(good.failed), 30, what="calls after the attack")
    finally:
        good.stop()
    assert good.failed == [], good.failed
    assert rss < RSS_BOUND, f"sidecar RSS {rss >> 20} MiB"
    return received, sent, elapsed


def goaway(received: list[tuple[int, int, int, bytes]]) -> tuple[int, int, bytes]:
    """(last stream id, error code, debug data) of the GOAWAY the attacker got."""
    for kind, _, _, payload in received:
        if kind == FrameType.GOAWAY:
            return f.u32(payload) & 0x7FFFFFFF, f.u32(payload, 4), payload[8:]
    raise AssertionError(f"no GOAWAY among {[k for k, *_ in received][:20]}")


def flood(
    make: Callable[[int], bytes], count: int = FLOOD, first: bytes = b""
) -> Callable[[], Iterator[bytes]]:
    """``first``, then ``count`` frames sent in batches of 100."""

    def frames() -> Iterator[bytes]:
        if first:
            yield first
        for at in range(0, count, 100):
            yield b"".join(make(i) for i in range(at, min(at + 100, count)))

    return frames


def _headers(
    sid: int, end_stream: bool = False, end_headers: bool = True, block: bytes | None = None
) -> bytes:
    flags = (Flag.END_HEADERS if end_headers else 0) | (Flag.END_STREAM if end_stream else 0)
    return f.frame(FrameType.HEADERS, flags, sid, request_block() if block is None else block)


def test_rapid_reset(sidecar: SidecarProc) -> None:
    received, _, elapsed = attack(
        sidecar, flood(lambda i: _headers(2 * i + 1) + f.rst_stream(2 * i + 1, ErrorCode.CANCEL))
    )
    last, code, _ = goaway(received)
    assert code == ErrorCode.ENHANCE_YOUR_CALM
    assert (last + 1) // 2 <= LIMITS.reset_burst + LIMITS.refill_per_s * elapsed + 2  # streams it got in


def test_continuation_flood(sidecar: SidecarProc) -> None:
    start = _headers(1, end_headers=False)
    received, _, _ = attack(
        sidecar, flood(lambda i: f.frame(FrameType.CONTINUATION, 0, 1, b"\x00"), first=start)
    )
    assert goaway(received)[1] == ErrorCode.ENHANCE_YOUR_CALM


@pytest.mark.parametrize(
    "make",
    [
        lambda i: f.settings({Setting.ENABLE_PUSH: 0}),
        lambda i: f.frame(FrameType.PING, 0, 0, i.to_bytes(8, "big")),
        lambda i: f.window_update(0, 1),
    ],
    ids=["settings", "ping", "window_update"],
)
def test_control_frame_flood(sidecar: SidecarProc, make: Callable[[int], bytes]) -> None:
    received, _, elapsed = attack(sidecar, flood(make))
    assert goaway(received)[1] == ErrorCode.ENHANCE_YOUR_CALM
    answers = sum(
        1 for kind, flags, _, _ in received if kind in (FrameType.PING, FrameType.SETTINGS) and flags
    )
    assert answers <= max(LIMITS.ping_burst, LIMITS.settings_burst) + LIMITS.refill_per_s * elapsed + 2


def test_empty_data_flood(sidecar: SidecarProc) -> None:
    received, _, _ = attack(sidecar, flood(lambda i: f.frame(FrameType.DATA, 0, 1), first=_headers(1)))
    assert goaway(received)[1] == ErrorCode.ENHANCE_YOUR_CALM


def test_hpack_header_list_bomb(sidecar: SidecarProc) -> None:
    """A 4 KiB table entry referenced 4,200 times per block: 17 MB decoded from 8 KB sent."""
    entry = b"\x40\x05x-big" + encode_int(4000, 7, 0) + b"v" * 4000  # literal, incremental indexing
    block = request_block() + entry + b"\xbe" * 4200  # index 62 = that entry
    received, _, _ = attack(sidecar, flood(lambda i: _headers(2 * i + 1, block=block), count=50))
    assert goaway(received)[:2] == (0, ErrorCode.ENHANCE_YOUR_CALM)  # cut on the first block


def test_slow_reader_that_never_opens_its_window(sidecar: SidecarProc) -> None:
    """INITIAL_WINDOW_SIZE 0 and no WINDOW_UPDATE: the response waits, then the connection is cut."""
    request = _headers(1) + f.frame(FrameType.DATA, Flag.END_STREAM, 1, grpc_message(b"x" * 100))
    received, _, _ = attack(
        sidecar,
        flood(lambda i: b"", count=0, first=request),
        settings={Setting.INITIAL_WINDOW_SIZE: 0},
        answer_pings=True,
    )
    assert goaway(received)[1] == ErrorCode.ENHANCE_YOUR_CALM
    assert not any(kind == FrameType.DATA for kind, *_ in received)


def test_idle_connection_is_closed(sidecar: SidecarProc) -> None:
    received, _, _ = attack(sidecar, flood(lambda i: b"", count=0), answer_pings=True)
    _, code, debug = goaway(received)
    assert code == ErrorCode.NO_ERROR
    assert b"keepalive" not in debug


def test_keepalive_ping_unanswered_closes(sidecar: SidecarProc) -> None:
    received, _, _ = attack(sidecar, flood(lambda i: b"", count=0))
    assert any(kind == FrameType.PING and not flags & Flag.ACK for kind, flags, _, _ in received)
    _, code, debug = goaway(received)
    assert code == ErrorCode.NO_ERROR
    assert b"keepalive" in debug


def test_parse_frames_reads_what_it_is_given() -> None:
    """The helper the attack tests read with (a GOAWAY split from its payload is not a frame)."""
    data = f.goaway(7, ErrorCode.ENHANCE_YOUR_CALM, b"why")
    assert list(parse_frames(data)) == [(FrameType.GOAWAY, 0, 0, data[9:])]
    assert list(parse_frames(data[:-1])) == []
