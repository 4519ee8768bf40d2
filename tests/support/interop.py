"""The grpc-go interop client and server (``make interop`` builds them into .cache/bin).

Found as ``$GRPC_INTEROP_BIN_DIR/grpc-interop-{client,server}`` or in
``<repo>/.cache/bin``. With ``CI=true`` (or ``GRPCMESH_REQUIRE_INTEROP=1``) a
missing binary fails the test; elsewhere the test is skipped with a hint.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["CANDIDATE_CASES", "ERROR_CASES", "CaseRun", "require_interop", "run_case"]

REPO_ROOT = Path(__file__).resolve().parents[2]

# Every case of the client that needs no cloud credentials; the test keeps those that pass direct.
CANDIDATE_CASES = (
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
    "pick_first_unary",
    "orca_per_rpc",
    "orca_oob",
)
# Cases whose calls end with a non-OK status on purpose: they run first, so an error the
# mesh wrongly counts against the endpoint would break the cases after them.
ERROR_CASES = (
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
)


def _required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("GRPCMESH_REQUIRE_INTEROP") == "1"


def require_interop() -> tuple[str, str]:
    """(client, server) binaries, or skip (fail under CI / GRPCMESH_REQUIRE_INTEROP=1)."""
    base = Path(os.environ.get("GRPC_INTEROP_BIN_DIR") or REPO_ROOT / ".cache" / "bin")
    client, server = base / "grpc-interop-client", base / "grpc-interop-server"
    missing = [str(p) for p in (client, server) if not os.access(p, os.X_OK)]
    if missing:
        msg = f"no grpc-go interop binaries ({', '.join(missing)}): run `make interop`"
        if _required():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return str(client), str(server)


@dataclass
class CaseRun:
    case: str
    path: str
    returncode: int
    output: str


def run_case(client: str, port: int, case: str, path: str, timeout: float = 15.0) -> CaseRun:
    """One run of the interop client against ``127.0.0.1:port``; a hang counts as a failure."""
    argv = [client, "--server_host", "127.0.0.1", "--server_port", str(port), "--test_case", case]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        out = err.stdout if isinstance(err.stdout, str) else ""
        return CaseRun(case, path, -1, f"timed out after {timeout}s\n{out}")
    return CaseRun(case, path, done.returncode, done.stdout + done.stderr)
