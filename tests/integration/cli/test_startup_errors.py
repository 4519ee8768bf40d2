"""Real ``grpcmesh`` processes: every startup mistake is one line on stderr and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ProcessGroup, free_port, wait_port

pytestmark = pytest.mark.integration


def grpcmesh(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "grpcmesh.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def failed(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The one error line; asserts exit 2 and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"grpcmesh {command}: "), result.stderr
    return last


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    line = failed(
        grpcmesh("eventstore", "--db", "events.db", "--port", str(busy_port), cwd=tmp_path), "eventstore"
    )
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line
    side = grpcmesh(
        "sidecar", "--service", "s", "--app", "127.0.0.1:1", "--outbound", f"127.0.0.1:{busy_port}",
        "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", cwd=tmp_path,
    )  # fmt: skip
    assert f"outbound: cannot listen on 127.0.0.1:{busy_port}" in failed(side, "sidecar")


def test_a_bad_app_module_is_one_line(tmp_path: Path) -> None:
    line = failed(
        grpcmesh("commandbus", "--app", "no.such.module", "--port", "0", cwd=tmp_path), "commandbus"
    )
    assert "--app 'no.such.module': cannot import it" in line


def test_a_bad_gateway_number_names_its_key(tmp_path: Path) -> None:
    (tmp_path / "gw.toml").write_text("[cache]\nttl = 'ten'\n")
    line = failed(grpcmesh("gateway", "--config", "gw.toml", cwd=tmp_path), "gateway")
    assert line == "grpcmesh gateway: gateway config [cache] ttl: expected a number, got 'ten' (in gw.toml:2)"


def test_a_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    env = {"GRPCMESH_CFG__MAX_CONCURRENCY": "lots", "GRPCMESH_REGISTRY": "mesh.toml", "GRPCMESH_SIDECAR": "x"}
    (tmp_path / "mesh.toml").write_text("")
    line = failed(
        grpcmesh("sidecar", "--service", "s", "--app", "127.0.0.1:1", cwd=tmp_path, env=env), "sidecar"
    )
    assert line.endswith("max_concurrency: expected int, got 'lots' (from env GRPCMESH_CFG__MAX_CONCURRENCY)")


@pytest.mark.parametrize(
    ("registry", "text", "problem"),
    [
        ("missing.toml", None, "registry missing.toml: no such file"),
        ("bad.toml", '[[services.orders]]\naddress = "127.0.0.1"\nprot = 50051\n', "bad.toml:3:1: "),
        ("file://bad.toml", "[[services.orders]\n", "bad.toml:1:"),
    ],
)
def test_an_unusable_registry_at_startup_is_fatal(
    tmp_path: Path, registry: str, text: str | None, problem: str
) -> None:
    if text is not None:
        (tmp_path / "bad.toml").write_text(text)
    argv = ["sidecar", "--service", "s", "--app", "127.0.0.1:1", "--endpoints-file", registry]
    line = failed(grpcmesh(*argv, cwd=tmp_path), "sidecar")
    assert problem in line
    assert "--allow-empty-registry" in line
    env_line = failed(grpcmesh(*argv[:5], cwd=tmp_path, env={"GRPCMESH_REGISTRY": registry}), "sidecar")
    assert problem in env_line


def test_allow_empty_registry_starts_anyway(tmp_path: Path) -> None:
    procs = ProcessGroup(tmp_path)
    admin = free_port()
    try:
        proc = procs.start(
            [sys.executable, "-m", "grpcmesh.cli", "sidecar", "--service", "s", "--app", "127.0.0.1:1",
             "--endpoints-file", "missing.toml", "--allow-empty-registry", "--outbound", "127.0.0.1:0",
             "--inbound", "127.0.0.1:0", "--admin", f"127.0.0.1:{admin}"],
            "sidecar", cwd=tmp_path,
        )  # fmt: skip
        wait_port(admin, timeout=30)
        proc.wait_output("sidecar ready", timeout=30)
        assert "registry missing.toml: no such file; starting with an empty registry" in proc.output()
    finally:
        procs.stop_all()


def test_otlp_without_its_extra_is_one_line(tmp_path: Path) -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - the extra is installed here
        pytest.skip("the otlp extra is installed")
    argv = ["sidecar", "--service", "s", "--app", "127.0.0.1:1", "--trace-exporter", "otlp"]
    line = failed(grpcmesh(*argv, cwd=tmp_path), "sidecar")
    assert line.endswith(
        "tracing.exporter: 'otlp' needs the extra: pip install 'grpcmesh[otlp]' (from flag --trace-exporter)"
    )


def test_a_database_that_will_not_open_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")  # a file where a directory should be
    line = failed(grpcmesh("eventstore", "--db", "file/events.db", "--port", "0", cwd=tmp_path), "eventstore")
    assert line.startswith("grpcmesh eventstore: ")
