"""The API gateway as a real subprocess (``grpcmesh gateway``), JWTs for it, and an HTTP helper."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from multidict import CIMultiDict

from tests.support.procs import ManagedProcess, ProcessGroup, free_port

__all__ = ["SECRET", "GatewayProc", "Reply", "make_token", "start_gateway"]

SECRET = "test-only-gateway-secret-0123456789abcdef"
SECRET_ENV = "GRPCMESH_TEST_GATEWAY_SECRET"
AUDIENCE = "grpcmesh-tests"


def make_token(sub: str = "alice", scope: str = "", secret: str = SECRET, **claims: Any) -> str:
    body = {"sub": sub, "aud": AUDIENCE, "exp": int(time.time()) + 600, "scope": scope, **claims}
    return jwt.encode(body, secret, algorithm="HS256")


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class GatewayProc:
    proc: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        timeout = aiohttp.ClientTimeout(total=20)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, data=data, headers=sent) as resp,
        ):
            return Reply(resp.status, CIMultiDict(resp.headers), await resp.text())


def start_gateway(procs: ProcessGroup, tmp_path: Path, config: str, *, auth: bool = True) -> GatewayProc:
    """Writes ``config`` (plus an ``[auth]`` table) to a TOML file and runs the gateway on it."""
    port = free_port()
    if auth:
        config += f'\n[auth]\nsecret_env = "{SECRET_ENV}"\naudience = "{AUDIENCE}"\n'
    path = tmp_path / f"gateway-{port}.toml"
    path.write_text(config)
    argv = [sys.executable, "-m", "grpcmesh.cli", "gateway", "--listen", f"127.0.0.1:{port}"]
    proc = procs.start([*argv, "--config", str(path)], "gateway", env={SECRET_ENV: SECRET})
    proc.wait_output(f"listening on 127.0.0.1:{port}", timeout=30)
    return GatewayProc(proc, port)
