"""Fuzzing the frame reader and HPACK decoder: structured (hypothesis) here, coverage-guided in CI.

The hypothesis strategy builds sequences of plausible frames (every type,
random flags, a few stream ids, payloads that are sometimes well-formed
header blocks) so the state machine is exercised past the first frame; the
atheris harness (``fuzz_h2.py``, ``make fuzz``) runs for a bounded time in
CI. Inputs that ever broke something stay below as regression cases.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grpcmesh.sidecar.h2 import frames as f
from grpcmesh.sidecar.h2.hpack_out import HeaderEncoder
from tests.support.h2wire import GRPC_REQUEST
from tests.support.mesh import ROOT
from tests.unit.dataplane.fuzz_h2 import check_connection, check_decoder

EXAMPLES = int(os.environ.get("H2_FUZZ_EXAMPLES", "150"))
_BLOCKS = [
    HeaderEncoder().encode(GRPC_REQUEST),
    HeaderEncoder().encode([*GRPC_REQUEST, ("content-length", "3")]),
    HeaderEncoder().encode([("grpc-status", "0")]),
    HeaderEncoder().encode([(":method", "GET"), (":path", "/"), (":scheme", "http")]),
    b"\x3f\xe1\x1f",  # a table size update
]

payloads = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(_BLOCKS),
    st.integers(0, 0xFFFFFFFF).map(lambda n: n.to_bytes(4, "big")),
    st.binary(min_size=8, max_size=8),
)
frames = st.builds(
    f.frame,
    st.sampled_from([*range(10), 0x42]),
    st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x25, 0xFF]),
    st.sampled_from([0, 1, 2, 3, 5, 7, 0x7FFFFFFF]),
    payloads,
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=25), st.integers(0, 200))
def test_frame_sequences_end_only_in_defined_protocol_outcomes(sequence: list[bytes], split: int) -> None:
    check_connection(b"".join(sequence), split)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=300))
def test_hpack_decoder_raises_only_decode_errors(block: bytes) -> None:
    check_decoder(block)


@pytest.mark.parametrize(
    "data",
    [
        # (regression inputs found by the fuzzers go here, as bytes after the preface)
        f.frame(1, 0x25, 1, b"\x00\x00\x00\x01\x10" + _BLOCKS[0]),  # HEADERS, priority on itself
        f.frame(1, 0x08, 1, b""),  # HEADERS padded, but no pad length byte
        f.frame(0, 0x08, 1, b""),  # DATA padded, but no pad length byte
        f.frame(1, 4, 1, _BLOCKS[1]) + f.frame(0, 1, 1, b"abcd"),  # more DATA than content-length
        f.frame(9, 4, 1, b""),  # CONTINUATION without HEADERS
    ],
)
def test_regressions(data: bytes) -> None:
    check_connection(data)


def test_atheris_run_bounded() -> None:
    """The coverage-guided fuzzer for a few seconds (``make fuzz`` runs it for longer)."""
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("atheris is not installed (pip install -e '.[dev]')")
        pytest.skip("atheris not installed")
    seconds = os.environ.get("H2_FUZZ_SECONDS", "8")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.unit.dataplane.fuzz_h2",
            f"-max_total_time={seconds}",
            "-rss_limit_mb=1024",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=int(seconds) + 60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done" in proc.stderr
