"""Coverage-guided fuzzing (atheris) of the sidecar's frame reader and HPACK decoder.

    python -m tests.unit.dataplane.fuzz_h2 -max_total_time=60 [corpus_dir]   # or: make fuzz

The first input byte picks the target: the HPACK decoder alone, or a server
connection fed the rest after a valid preface (in two chunks, split where the
second byte says). Nothing but a defined protocol outcome may happen: the
decoder raises only :class:`HPACKDecodeError`; the connection never reaches
its "internal error" path (an exception escaping a frame handler), and its
stream table stays consistent. ``check_connection`` / ``check_decoder`` are
shared with the hypothesis tests in ``test_h2_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Iterable
from typing import Any

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.hpack_in import HeaderDecoder, HPACKDecodeError
from grpcmesh.sidecar.h2.limits import H2Limits
from grpcmesh.sidecar.h2.server import H2Server, ServerConnection
from grpcmesh.sidecar.h2.states import State
from tests.support.h2wire import FakeTransport

LIMITS = H2Limits(
    max_concurrent_streams=8, max_header_list_bytes=64 * 1024, max_header_bytes_per_connection=1 << 20
)


class _Crash(logging.Handler):
    """Turns the connection's 'failed while handling a frame' log record into a test failure."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            raise AssertionError(
                f"internal error path reached: {record.getMessage()}\n{record.exc_text or ''}"
            )


class _Echo:
    """Answers every stream at once and echoes data, so response paths run too."""

    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        if end_stream:
            stream.send_headers([("grpc-status", "0")], True)

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        stream.send_data(data, False, stream)
        if end_stream:
            stream.send_headers([("grpc-status", "0")], True)

    def on_reset(self, stream: Stream, code: int) -> None:
        pass


def _accept(stream: Stream, headers: Headers, end_stream: bool) -> None:
    stream.owner = _Echo()
    stream.send_headers([(":status", "200"), ("content-type", "application/grpc")])
    if end_stream:
        stream.send_headers([("grpc-status", "0")], True)


_LOG = logging.getLogger("grpcmesh.sidecar.h2")
_LOOP = asyncio.new_event_loop()  # one loop for every input (a loop per input would dominate)


async def _feed(chunks: list[bytes]) -> None:
    conn = ServerConnection(_accept, H2Server(_accept, LIMITS))
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    for chunk in chunks:
        conn.data_received(chunk)
        await asyncio.sleep(0)
        _check_streams(conn)
        if conn.closed:
            break
    conn.connection_lost(None)


def _check_streams(conn: ServerConnection) -> None:
    for sid, stream in conn.streams.items():
        assert stream.id == sid
        assert stream.state not in (State.IDLE, State.CLOSED), (sid, stream.state)
    assert len(conn.streams) <= LIMITS.max_concurrent_streams
    assert set(conn.blocked) <= set(conn.streams)
    assert 0 <= conn.header_bytes <= LIMITS.max_header_bytes_per_connection


def check_connection(data: bytes, split: int = 0) -> None:
    """Feeds preface + SETTINGS + ``data`` (split in two at ``split``) to a server connection."""
    chunks = [f.PREFACE + f.settings({}) + data[:split], data[split:]]
    crash = _Crash()
    _LOG.addHandler(crash)
    try:
        _LOOP.run_until_complete(_feed(chunks))
    finally:
        _LOG.removeHandler(crash)


def check_decoder(data: bytes) -> None:
    decoder = HeaderDecoder(max_header_list=64 * 1024)
    for block in (data, data[len(data) // 2 :]):  # twice: the second decode sees the table the first left
        try:
            fields = decoder.decode(block)
        except HPACKDecodeError:
            continue
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in fields)


def one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        check_decoder(data[1:])
    else:
        check_connection(data[2:], data[1] if len(data) > 1 else 0)


def _instrument(atheris: Any, objects: Iterable[object], module: str) -> None:
    for obj in objects:
        if inspect.isfunction(obj) and obj.__module__ == module:
            atheris.instrument_func(obj)
        elif inspect.isclass(obj) and obj.__module__ == module:
            members = [m.fget if isinstance(m, property) else m for m in vars(obj).values()]
            _instrument(atheris, [m for m in members if m is not None], module)


def main() -> None:
    import atheris  # type: ignore[import-not-found]  # only `make fuzz` and its CI run need it

    for name, module in list(sys.modules.items()):  # coverage feedback from the h2 package only
        if name.startswith("grpcmesh.sidecar.h2"):
            _instrument(atheris, vars(module).values(), name)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
