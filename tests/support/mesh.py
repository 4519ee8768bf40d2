"""Start echo apps and sidecars as real processes for sidecar tests and benchmarks.

Each helper picks free loopback ports, starts the process through a
:class:`ProcessGroup` (so it is always stopped) and waits for its ready line.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import ManagedProcess, ProcessGroup, free_port

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "EchoProc", "SidecarProc", "admin_get", "start_echo_proc", "start_sidecar"]


@dataclass
class EchoProc:
    proc: ManagedProcess
    port: int
    name: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class SidecarProc:
    proc: ManagedProcess
    outbound: int
    inbound: int
    admin: int

    def admin_json(self, path: str) -> Any:
        return json.loads(admin_get(self.admin, path)[1])


def start_echo_proc(procs: ProcessGroup, name: str, port: int | None = None) -> EchoProc:
    port = port or free_port()
    proc = procs.start(
        [sys.executable, "-m", "tests.support.echo", "--port", str(port), "--name", name],
        f"echo-{name}",
        cwd=ROOT,
    )
    proc.wait_output("echo listening on", timeout=20)
    return EchoProc(proc, port, name)


def start_sidecar(
    procs: ProcessGroup,
    service: str,
    app: str,
    *args: str,
    config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> SidecarProc:
    """``grpcmesh sidecar`` on free ports; ``config`` is written as a TOML file.

    ``wait=False`` returns at once (start several, then ``proc.wait_output("sidecar ready")``).
    """
    out, inb, adm = free_port(), free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "grpcmesh.cli",
        "sidecar",
        "--service",
        service,
        "--app",
        app,
        "--outbound",
        f"127.0.0.1:{out}",
        "--inbound",
        f"127.0.0.1:{inb}",
        "--admin",
        f"127.0.0.1:{adm}",
        *args,
    ]
    if config:
        path = procs.log_dir / f"sidecar-{service}-{out}.toml"
        path.write_text(_toml(config))
        argv += ["--config", str(path)]
    proc = procs.start(argv, f"sidecar-{service}", env=env, cwd=ROOT)
    if wait:
        proc.wait_output("sidecar ready", timeout=30)
    return SidecarProc(proc, out, inb, adm)


def admin_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _toml(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> str:
    """Just enough TOML for test configs: scalars, lists of scalars, nested tables (keys may hold dots)."""
    lines: list[str] = []
    tables: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(((*prefix, key), value))
        else:
            lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
    out = "\n".join(lines) + "\n"
    for path, table in tables:
        header = ".".join(json.dumps(p) for p in path)
        out += f"\n[{header}]\n" + _toml(table, path)
    return out
